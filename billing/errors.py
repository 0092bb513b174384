"""The billing error hierarchy: every failure in ``billing`` is a ``BillingError``."""

from __future__ import annotations


class BillingError(Exception):
    """Base class for every error raised by ``billing``."""


class CurrencyError(BillingError):
    """A currency code is unknown, or an amount does not fit its minor unit."""
