"""The embedded rail: money moves only in the ledger, and payouts are statements.

Collecting, paying out and refunding succeed at once and make nothing outside the
ledger; what the coordinator signs and logs (the payout statement) is the instruction to
pay, settled off-platform. Every answer is derived from the idempotency key alone, so a
repeated or reconciled call gives the same reference.
"""

from __future__ import annotations

from billing.rails.base import Onboarding, RailError, RailEventData, RailResult

SUCCEEDED = "succeeded"


class LedgerRail:
    """The ``ledger`` rail (see the module docstring)."""

    name = "ledger"

    def collect(
        self, *, key: str, job_id: str, amount_minor: int, currency: str, payment_method: str | None
    ) -> RailResult:
        """Funding on the ledger rail needs no payment: it succeeds at once."""
        return RailResult(f"ledger:{key}", SUCCEEDED)

    def collection(self, reference: str) -> RailResult:
        """A ledger collection has always succeeded."""
        return RailResult(reference, SUCCEEDED)

    def pay_out(
        self, *, key: str, job_id: str, destination: str | None, amount_minor: int, currency: str
    ) -> RailResult:
        """A payout on the ledger rail is a line of the signed payout statement."""
        return RailResult(f"ledger:{key}", SUCCEEDED)

    def find_payout(self, *, key: str, job_id: str) -> RailResult | None:
        """Nothing is made outside the ledger: a pending payout has not been paid yet."""
        return None

    def refund(
        self, *, key: str, job_id: str, collection: str, amount_minor: int, currency: str
    ) -> RailResult:
        """A refund on the ledger rail is a line of the signed payout statement."""
        return RailResult(f"ledger:{key}", SUCCEEDED)

    def find_refund(self, *, key: str, collection: str) -> RailResult | None:
        """Nothing is made outside the ledger: a pending refund has not been made yet."""
        return None

    def onboard(
        self, *, party: str, email: str | None, account: str | None, return_url: str
    ) -> Onboarding:
        """The ledger rail pays by statement; there is nothing to onboard to."""
        raise RailError(
            "the ledger rail pays by signed statement and needs no onboarding; "
            "configure the stripe rail (tally coordinator payments --rail stripe) for payouts"
        )

    def parse_event(self, payload: bytes, signature: str | None) -> RailEventData:
        """The ledger rail sends no webhooks."""
        raise RailError("the ledger rail sends no webhook events")
