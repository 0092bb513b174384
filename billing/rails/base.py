"""The interface every payment rail implements, and its two errors.

A rail is called only with an idempotency key the coordinator committed first (a
``RailOperation`` id), and every call is safe to repeat with the same key: the rail
answers with the object the first call made. ``find_payout`` and ``find_refund`` look an
operation up by that key without making anything, so that a coordinator that died
between calling the rail and recording the answer learns what happened.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from billing.errors import BillingError


class RailError(BillingError):
    """The rail refused an operation; repeating it unchanged will not help."""


class RailUnavailable(BillingError):
    """The rail could not be reached or failed on its side; the operation stays pending
    and is reconciled later with the same idempotency key."""


@dataclass(frozen=True)
class RailResult:
    """What the rail made: its id for it and its status (``succeeded``, or for funding
    also ``requires_action`` / ``processing``), with a client secret for funding."""

    reference: str
    status: str
    client_secret: str | None = None


@dataclass(frozen=True)
class Onboarding:
    """A party's account on the rail and where the party completes its onboarding."""

    account: str
    url: str
    payouts_enabled: bool


@dataclass(frozen=True)
class RailEventData:
    """A verified webhook event, reduced to what the coordinator acts on."""

    id: str
    type: str
    created: int
    object: dict[str, object]


class PaymentRail(Protocol):
    """A payment rail (see the module docstring)."""

    #: The rail's name, as configured and as its clearing account is named.
    name: str

    def collect(
        self, *, key: str, job_id: str, amount_minor: int, currency: str, payment_method: str | None
    ) -> RailResult:
        """Take ``amount_minor`` from the buyer for ``job_id``."""
        ...

    def collection(self, reference: str) -> RailResult:
        """The current state of a collection made earlier."""
        ...

    def pay_out(
        self, *, key: str, job_id: str, destination: str | None, amount_minor: int, currency: str
    ) -> RailResult:
        """Send ``amount_minor`` owed for ``job_id`` to the party's rail account."""
        ...

    def find_payout(self, *, key: str, job_id: str) -> RailResult | None:
        """The payout made with ``key``, if the rail has one."""
        ...

    def refund(
        self, *, key: str, job_id: str, collection: str, amount_minor: int, currency: str
    ) -> RailResult:
        """Give ``amount_minor`` of the collection ``collection`` back to the buyer."""
        ...

    def find_refund(self, *, key: str, collection: str) -> RailResult | None:
        """The refund made with ``key``, if the rail has one."""
        ...

    def onboard(
        self, *, party: str, email: str | None, account: str | None, return_url: str
    ) -> Onboarding:
        """A rail account for ``party`` (made if ``account`` is None) and its onboarding link."""
        ...

    def parse_event(self, payload: bytes, signature: str | None) -> RailEventData:
        """A webhook event, verified; raises ``RailError`` if it is not the rail's."""
        ...
