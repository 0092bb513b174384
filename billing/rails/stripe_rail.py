"""Stripe Connect, separate charges and transfers, through the official ``stripe`` client.

- Funding: a PaymentIntent for the job's quote, confirmed with the buyer's payment method,
  ``transfer_group`` = job id, idempotency key = the funding operation's id.
- Payouts: a Transfer to the creator's Express connected account, ``transfer_group`` =
  job id, ``metadata.tally_operation`` and ``Idempotency-Key`` = the operation's id (a
  ledger transfer id). ``find_payout`` lists the job's transfer group for that metadata,
  which works after Stripe has forgotten the idempotency key (24 hours).
- Refunds: a Refund of the job's PaymentIntent for the released hold, found again the
  same way by ``metadata.tally_operation``.
- Onboarding: an Express account (made once per party, with an idempotency key) and an
  Account Link for ``account_onboarding``.
- Webhooks: the ``Stripe-Signature`` header verified against the endpoint secret within
  five minutes (``stripe.Webhook``); de-duplication by event id is the coordinator's.

Errors: Stripe's refusals (card declined, invalid request, idempotency conflict, bad key)
raise ``RailError``; network failures, rate limits and Stripe's own 5xx raise
``RailUnavailable``, after the client's own retries, which reuse the idempotency key.
The API key is never put into a message.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import stripe

from billing.rails.base import Onboarding, RailError, RailEventData, RailResult, RailUnavailable

#: How old a webhook's signature may be, in seconds (Stripe's default).
WEBHOOK_TOLERANCE_SECONDS = 300
#: The metadata key that carries our idempotency key on every object we make.
OPERATION_KEY = "tally_operation"
_T = TypeVar("_T")


class StripeRail:
    """The ``stripe`` rail (see the module docstring)."""

    name = "stripe"

    def __init__(
        self,
        *,
        api_key: str,
        webhook_secret: str,
        api_base: str = "https://api.stripe.com",
        refresh_url: str | None = None,
        max_network_retries: int = 2,
    ) -> None:
        if not api_key:
            raise RailError("the stripe rail needs an API key (tally coordinator payments)")
        self._client = stripe.StripeClient(
            api_key,
            base_addresses={"api": api_base},
            max_network_retries=max_network_retries,
        )
        self._webhook_secret = webhook_secret
        self._refresh_url = refresh_url

    def __repr__(self) -> str:  # never show the key
        return "StripeRail()"

    def _call(self, what: str, action: Callable[[], _T]) -> _T:
        try:
            return action()
        except stripe.CardError as exc:
            raise RailError(f"stripe {what}: the card was declined ({_message(exc)})") from exc
        except stripe.AuthenticationError as exc:
            raise RailError(f"stripe {what}: Stripe refused the API key") from exc
        except (stripe.APIConnectionError, stripe.RateLimitError) as exc:
            raise RailUnavailable(f"stripe {what}: {_message(exc)}") from exc
        except stripe.APIError as exc:
            raise RailUnavailable(f"stripe {what}: Stripe failed ({_message(exc)})") from exc
        except stripe.StripeError as exc:
            status = getattr(exc, "http_status", None)
            if isinstance(status, int) and status >= 500:
                raise RailUnavailable(f"stripe {what}: Stripe failed ({_message(exc)})") from exc
            raise RailError(f"stripe {what}: {_message(exc)}") from exc

    def collect(
        self, *, key: str, job_id: str, amount_minor: int, currency: str, payment_method: str | None
    ) -> RailResult:
        """A PaymentIntent for the job, confirmed with ``payment_method`` when given."""
        params: dict[str, Any] = {
            "amount": amount_minor,
            "currency": currency.lower(),
            "transfer_group": job_id,
            "description": f"Tallystick job {job_id}",
            "metadata": {OPERATION_KEY: key, "tally_job": job_id},
            "automatic_payment_methods": {"enabled": True, "allow_redirects": "never"},
        }
        if payment_method:
            params.update(payment_method=payment_method, confirm=True)
        intent = self._call(
            "payment",
            lambda: self._client.v1.payment_intents.create(
                params=params,  # type: ignore[arg-type]
                options={"idempotency_key": key},
            ),
        )
        return RailResult(intent.id, intent.status, intent.client_secret)

    def collection(self, reference: str) -> RailResult:
        """The PaymentIntent ``reference`` as Stripe has it now."""
        intent = self._call(
            "payment lookup", lambda: self._client.v1.payment_intents.retrieve(reference)
        )
        return RailResult(intent.id, intent.status, intent.client_secret)

    def pay_out(
        self, *, key: str, job_id: str, destination: str | None, amount_minor: int, currency: str
    ) -> RailResult:
        """A Transfer to ``destination`` (a connected account) in the job's transfer group."""
        if not destination:
            raise RailError("stripe payout: the payee has no connected account yet")
        made = self._call(
            "transfer",
            lambda: self._client.v1.transfers.create(
                params={
                    "amount": amount_minor,
                    "currency": currency.lower(),
                    "destination": destination,
                    "transfer_group": job_id,
                    "description": f"Tallystick royalties, job {job_id}",
                    "metadata": {OPERATION_KEY: key, "tally_job": job_id},
                },
                options={"idempotency_key": key},
            ),
        )
        return RailResult(made.id, "succeeded")

    def find_payout(self, *, key: str, job_id: str) -> RailResult | None:
        """The Transfer of the job's transfer group made for ``key``, if there is one."""
        found = self._call(
            "transfer lookup",
            lambda: [
                item.id
                for item in self._client.v1.transfers.list(
                    params={"transfer_group": job_id, "limit": 100}
                ).auto_paging_iter()
                if _operation(item) == key
            ],
        )
        return RailResult(found[0], "succeeded") if found else None

    def refund(
        self, *, key: str, job_id: str, collection: str, amount_minor: int, currency: str
    ) -> RailResult:
        """A Refund of ``amount_minor`` of the job's PaymentIntent ``collection``."""
        made = self._call(
            "refund",
            lambda: self._client.v1.refunds.create(
                params={
                    "payment_intent": collection,
                    "amount": amount_minor,
                    "metadata": {OPERATION_KEY: key, "tally_job": job_id},
                },
                options={"idempotency_key": key},
            ),
        )
        return RailResult(made.id, made.status or "succeeded")

    def find_refund(self, *, key: str, collection: str) -> RailResult | None:
        """The Refund of ``collection`` made for ``key``, if there is one."""
        found = self._call(
            "refund lookup",
            lambda: [
                (item.id, item.status)
                for item in self._client.v1.refunds.list(
                    params={"payment_intent": collection, "limit": 100}
                ).auto_paging_iter()
                if _operation(item) == key
            ],
        )
        return RailResult(found[0][0], found[0][1] or "succeeded") if found else None

    def onboard(
        self, *, party: str, email: str | None, account: str | None, return_url: str
    ) -> Onboarding:
        """An Express account for ``party`` (made once) and a fresh onboarding link."""
        if account is None:
            params: dict[str, Any] = {
                "type": "express",
                "capabilities": {"transfers": {"requested": True}},
                "metadata": {"tally_account": party},
            }
            if email:
                params["email"] = email
            made = self._call(
                "account",
                lambda: self._client.v1.accounts.create(
                    params=params,  # type: ignore[arg-type]
                    options={"idempotency_key": f"onboard:{party}"},
                ),
            )
            account = made.id
        existing = self._call("account lookup", lambda: self._client.v1.accounts.retrieve(account))
        link = self._call(
            "account link",
            lambda: self._client.v1.account_links.create(
                params={
                    "account": existing.id,
                    "refresh_url": self._refresh_url or return_url,
                    "return_url": return_url,
                    "type": "account_onboarding",
                }
            ),
        )
        return Onboarding(existing.id, link.url, bool(existing.payouts_enabled))

    def parse_event(self, payload: bytes, signature: str | None) -> RailEventData:
        """The event in ``payload`` if ``signature`` is the endpoint secret's, recent enough."""
        if not self._webhook_secret:
            raise RailError("no webhook endpoint secret is configured; webhooks are refused")
        if not signature:
            raise RailError("the Stripe-Signature header is missing")
        try:
            event = stripe.Webhook.construct_event(
                payload, signature, self._webhook_secret, tolerance=WEBHOOK_TOLERANCE_SECONDS
            )
        except stripe.SignatureVerificationError as exc:
            raise RailError(f"the webhook signature does not verify: {_message(exc)}") from exc
        except ValueError as exc:
            raise RailError(f"the webhook body is not a Stripe event: {exc}") from exc
        try:
            obj = event["data"]["object"].to_dict()
            return RailEventData(str(event["id"]), str(event["type"]), int(event["created"]), obj)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise RailError(f"the webhook event lacks a field: {exc}") from exc


def _operation(item: Any) -> str | None:
    """The idempotency key we put into an object's metadata, if any."""
    metadata = getattr(item, "metadata", None)
    value = metadata.get(OPERATION_KEY) if metadata else None
    return value if isinstance(value, str) else None


def _message(exc: stripe.StripeError) -> str:
    text = getattr(exc, "user_message", None) or str(exc) or type(exc).__name__
    return text.splitlines()[0][:300]
