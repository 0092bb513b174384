"""The privacy error hierarchy.

Every failure in this package is a ``PrivacyError``. A refusal (a job that would overrun
a dataset's privacy budget, data that holds PII under a ``block`` policy) is an error
of its own type whose message carries the numbers a user needs to act on it.
"""

from __future__ import annotations


class PrivacyError(Exception):
    """Base class for every error raised by ``privacy``."""


class PiiError(PrivacyError):
    """A PII scan cannot run: bad detector configuration or unreadable input."""


class PiiBlocked(PiiError):
    """The data holds PII and the dataset's policy is ``block``."""


class BudgetError(PrivacyError):
    """A privacy-budget request is malformed or names an unknown dataset or job."""


class BudgetExceeded(BudgetError):
    """A mechanism would push a dataset's per-job or lifetime ε past its cap."""


class AccountingError(PrivacyError):
    """Privacy accounting cannot be computed for the given parameters."""
