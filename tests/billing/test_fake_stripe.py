"""The local Stripe fake, driven through the real `stripe` client: every endpoint answers with
objects the client parses, errors arrive as the client's own exception classes, idempotency
replays and refuses as Stripe does, lists page, money rules hold, and webhook signatures verify
with `stripe.Webhook`."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import stripe
from fakes.fake_stripe import FakeStripe

API_KEY = "sk_test_fake"
NO_REDIRECTS = {"enabled": True, "allow_redirects": "never"}


@pytest.fixture
def fake() -> Iterator[FakeStripe]:
    with FakeStripe() as running:
        yield running


@pytest.fixture
def client(fake: FakeStripe) -> stripe.StripeClient:
    return stripe.StripeClient(
        API_KEY, base_addresses={"api": fake.base_url}, max_network_retries=0
    )


@pytest.fixture
def no_retry_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    """The client waits 0.5 s and more between retries; the tests need not."""
    monkeypatch.setattr(stripe.HTTPClient, "_sleep_time_seconds", lambda self, retries: 0.0)


def _account(client: stripe.StripeClient, *, onboarded: FakeStripe | None = None) -> Any:
    account = client.v1.accounts.create(
        params={
            "type": "express",
            "country": "US",
            "email": "seller@example.com",
            "capabilities": {"transfers": {"requested": True}},
            "metadata": {"party_id": "p-1"},
        }
    )
    if onboarded is not None:
        onboarded.complete_onboarding(account.id)
    return account


def _charge(client: stripe.StripeClient, amount: int = 10_000, **extra: Any) -> Any:
    return client.v1.payment_intents.create(
        params={
            "amount": amount,
            "currency": "usd",
            "payment_method": "pm_card_visa",
            "confirm": True,
            "automatic_payment_methods": NO_REDIRECTS,
            **extra,
        }
    )


def _raw(fake: FakeStripe, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {API_KEY}", **kwargs.pop("headers", {})}
    return httpx.request(method, fake.base_url + path, headers=headers, **kwargs)


# --- Accounts and onboarding -----------------------------------------------------------------


def test_an_express_account_is_created_and_retrieved(
    client: stripe.StripeClient, fake: FakeStripe
) -> None:
    account = _account(client)
    assert account.id.startswith("acct_")
    assert account.object == "account"
    assert account.type == "express"
    assert account.country == "US"
    assert account.default_currency == "usd"
    assert account.email == "seller@example.com"
    assert (account.charges_enabled, account.payouts_enabled, account.details_submitted) == (
        False,
        False,
        False,
    )
    assert account.capabilities.to_dict() == {"transfers": "inactive"}
    assert account.metadata.to_dict() == {"party_id": "p-1"}
    assert isinstance(account.created, int)
    again = client.v1.accounts.retrieve(account.id)
    assert again.id == account.id
    assert fake.accounts[account.id]["email"] == "seller@example.com"


def test_account_parameters_are_checked_like_stripe(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.accounts.retrieve("acct_nope")
    assert missing.value.http_status == 404
    assert missing.value.code == "resource_missing"
    assert missing.value.param == "id"
    assert missing.value.user_message == "No such account: 'acct_nope'"

    with pytest.raises(stripe.InvalidRequestError) as bad_type:
        client.v1.accounts.create(params={"type": "premium"})
    assert bad_type.value.param == "type"

    with pytest.raises(stripe.InvalidRequestError) as unknown:
        client.v1.accounts.create(
            params={"type": "express", "capabilities": {"teleport": {"requested": True}}}
        )
    assert unknown.value.code == "parameter_unknown"
    assert unknown.value.param == "capabilities[teleport]"
    assert unknown.value.user_message == "Received unknown parameter: capabilities[teleport]"

    with pytest.raises(stripe.InvalidRequestError) as no_capability:
        client.v1.accounts.create(params={"type": "express"})
    assert no_capability.value.param == "capabilities"

    with pytest.raises(stripe.InvalidRequestError) as no_type:
        client.v1.accounts.create(params={"country": "US"})
    assert no_type.value.code == "parameter_missing"


def test_an_account_link_onboards_once_and_then_refreshes(
    client: stripe.StripeClient, fake: FakeStripe
) -> None:
    account = _account(client)
    link = client.v1.account_links.create(
        params={
            "account": account.id,
            "refresh_url": "https://market.example/refresh",
            "return_url": "https://market.example/done",
            "type": "account_onboarding",
        }
    )
    assert link.object == "account_link"
    assert link.url.startswith(f"{fake.base_url}/express/onboarding/")
    assert link.expires_at == link.created + 300

    first = httpx.get(link.url)
    assert (first.status_code, first.headers["location"]) == (302, "https://market.example/done")
    onboarded = client.v1.accounts.retrieve(account.id)
    assert onboarded.charges_enabled
    assert onboarded.payouts_enabled
    assert onboarded.details_submitted
    assert onboarded.capabilities.to_dict() == {"transfers": "active"}
    second = httpx.get(link.url)
    assert second.headers["location"] == "https://market.example/refresh"

    updated = [event for event in fake.events if event["type"] == "account.updated"]
    assert len(updated) == 1
    assert updated[0]["account"] == account.id
    assert updated[0]["data"]["previous_attributes"]["capabilities"] == {"transfers": "inactive"}

    with pytest.raises(stripe.InvalidRequestError) as unknown:
        client.v1.account_links.create(
            params={
                "account": "acct_nope",
                "refresh_url": "https://market.example/refresh",
                "return_url": "https://market.example/done",
                "type": "account_onboarding",
            }
        )
    assert (unknown.value.code, unknown.value.param) == ("resource_missing", "account")
    with pytest.raises(stripe.InvalidRequestError) as no_urls:
        client.v1.account_links.create(params={"account": account.id, "type": "account_onboarding"})
    assert no_urls.value.code == "parameter_missing"


# --- PaymentIntents ---------------------------------------------------------------------------


def test_a_visa_payment_succeeds_with_a_charge(
    client: stripe.StripeClient, fake: FakeStripe
) -> None:
    intent = client.v1.payment_intents.create(
        params={
            "amount": 2500,
            "currency": "USD",
            "payment_method": "pm_card_visa",
            "confirm": True,
            "automatic_payment_methods": NO_REDIRECTS,
            "transfer_group": "job-7",
            "description": "round 1",
            "metadata": {"job_id": "job-7"},
        }
    )
    assert intent.object == "payment_intent"
    assert intent.id.startswith("pi_")
    assert intent.client_secret.startswith(f"{intent.id}_secret_")
    assert intent.status == "succeeded"
    assert (intent.amount, intent.amount_received, intent.currency) == (2500, 2500, "usd")
    assert intent.latest_charge.startswith("ch_")
    assert intent.payment_method.startswith("pm_")
    assert intent.payment_method != "pm_card_visa"
    assert intent.transfer_group == "job-7"
    assert intent.metadata["job_id"] == "job-7"
    assert intent.livemode is False
    assert client.v1.payment_intents.retrieve(intent.id).status == "succeeded"
    charge = client.v1.charges.retrieve(intent.latest_charge)
    assert (charge.status, charge.amount, charge.payment_intent) == ("succeeded", 2500, intent.id)
    types = [event["type"] for event in fake.events]
    assert types == ["payment_intent.created", "charge.succeeded", "payment_intent.succeeded"]
    assert fake.available_balance("usd") == 2500


def test_a_declined_card_is_a_card_error_carrying_the_intent(
    client: stripe.StripeClient, fake: FakeStripe
) -> None:
    with pytest.raises(stripe.CardError) as declined:
        _charge(client, payment_method="pm_card_chargeDeclined")
    error = declined.value
    assert error.http_status == 402
    assert error.code == "card_declined"
    assert error.error is not None
    assert error.error.decline_code == "generic_decline"
    assert error.error.payment_intent.status == "requires_payment_method"
    assert error.error.payment_intent.last_payment_error.code == "card_declined"
    failed = [event for event in fake.events if event["type"] == "payment_intent.payment_failed"]
    assert len(failed) == 1
    assert fake.available_balance("usd") == 0

    with pytest.raises(stripe.CardError) as poor:
        _charge(client, payment_method="pm_card_chargeDeclinedInsufficientFunds")
    assert poor.value.error is not None
    assert poor.value.error.decline_code == "insufficient_funds"


def test_authentication_and_unconfirmed_intents_take_stripes_statuses(
    client: stripe.StripeClient,
) -> None:
    needs_action = _charge(client, payment_method="pm_card_authenticationRequired")
    assert needs_action.status == "requires_action"
    assert needs_action.next_action.type == "use_stripe_sdk"
    with pytest.raises(stripe.CardError) as off_session:
        _charge(client, payment_method="pm_card_authenticationRequired", off_session=True)
    assert off_session.value.code == "authentication_required"

    bare = client.v1.payment_intents.create(params={"amount": 900, "currency": "eur"})
    assert bare.status == "requires_payment_method"
    assert bare.automatic_payment_methods.enabled is True
    with_method = client.v1.payment_intents.create(
        params={"amount": 900, "currency": "eur", "payment_method": "pm_card_mastercard"}
    )
    assert with_method.status == "requires_confirmation"
    confirmed = client.v1.payment_intents.confirm(
        with_method.id, params={"return_url": "https://market.example/paid"}
    )
    assert confirmed.status == "succeeded"
    with pytest.raises(stripe.InvalidRequestError) as twice:
        client.v1.payment_intents.confirm(with_method.id)
    assert twice.value.code == "payment_intent_unexpected_state"


def test_payment_intent_rules_that_bite_in_production(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as redirect:
        client.v1.payment_intents.create(
            params={
                "amount": 900,
                "currency": "usd",
                "payment_method": "pm_card_visa",
                "confirm": True,
            }
        )
    assert "return_url" in (redirect.value.user_message or "")

    with pytest.raises(stripe.InvalidRequestError) as small:
        _charge(client, amount=49)
    assert (small.value.code, small.value.param) == ("amount_too_small", "amount")

    with pytest.raises(stripe.InvalidRequestError) as zero:
        _charge(client, amount=0)
    assert zero.value.param == "amount"

    with pytest.raises(stripe.InvalidRequestError) as currency:
        client.v1.payment_intents.create(params={"amount": 900, "currency": "xyz"})
    assert currency.value.param == "currency"

    with pytest.raises(stripe.InvalidRequestError) as unknown_method:
        _charge(client, payment_method="pm_does_not_exist")
    assert unknown_method.value.code == "resource_missing"

    used = _charge(client).payment_method
    with pytest.raises(stripe.InvalidRequestError) as reused:
        _charge(client, payment_method=used)
    assert reused.value.param == "payment_method"

    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.payment_intents.retrieve("pi_nope")
    assert (missing.value.http_status, missing.value.code) == (404, "resource_missing")


# --- Transfers ----------------------------------------------------------------------------


def test_a_transfer_needs_an_onboarded_destination_and_available_funds(
    client: stripe.StripeClient, fake: FakeStripe
) -> None:
    account = _account(client)
    _charge(client, amount=5000)
    with pytest.raises(stripe.InvalidRequestError) as not_onboarded:
        client.v1.transfers.create(
            params={"amount": 1000, "currency": "usd", "destination": account.id}
        )
    assert not_onboarded.value.code == "insufficient_capabilities_for_transfer"
    fake.complete_onboarding(account.id)

    with pytest.raises(stripe.InvalidRequestError) as nowhere:
        client.v1.transfers.create(
            params={"amount": 1000, "currency": "usd", "destination": "acct_nope"}
        )
    assert (nowhere.value.code, nowhere.value.param) == ("resource_missing", "destination")
    assert nowhere.value.user_message == "No such destination: 'acct_nope'"

    transfer = client.v1.transfers.create(
        params={
            "amount": 4000,
            "currency": "usd",
            "destination": account.id,
            "transfer_group": "job-1",
            "metadata": {"round": "1"},
            "description": "payout",
        }
    )
    assert transfer.object == "transfer"
    assert transfer.id.startswith("tr_")
    assert transfer.balance_transaction.startswith("txn_")
    assert (transfer.amount, transfer.amount_reversed, transfer.reversed) == (4000, 0, False)
    assert (transfer.destination, transfer.transfer_group) == (account.id, "job-1")
    assert client.v1.transfers.retrieve(transfer.id).metadata["round"] == "1"
    assert fake.available_balance() == 1000

    with pytest.raises(stripe.InvalidRequestError) as broke:
        client.v1.transfers.create(
            params={"amount": 1001, "currency": "usd", "destination": account.id}
        )
    assert broke.value.code == "balance_insufficient"
    assert broke.value.http_status == 400
    assert [event["type"] for event in fake.events].count("transfer.created") == 1


def test_transfer_lists_filter_and_page_newest_first(
    client: stripe.StripeClient, fake: FakeStripe
) -> None:
    account = _account(client, onboarded=fake)
    _charge(client, amount=100_000)
    made = [
        client.v1.transfers.create(
            params={
                "amount": 100 + n,
                "currency": "usd",
                "destination": account.id,
                "transfer_group": "odd" if n % 2 else "even",
            }
        ).id
        for n in range(24)
    ]
    first = client.v1.transfers.list()
    assert first.object == "list"
    assert first.url == "/v1/transfers"
    assert len(first.data) == 10
    assert first.has_more is True
    assert [t.id for t in first.data] == made[::-1][:10]

    everything = [t.id for t in client.v1.transfers.list(params={"limit": 7}).auto_paging_iter()]
    assert everything == made[::-1]
    odd = client.v1.transfers.list(params={"transfer_group": "odd", "limit": 100})
    assert [t.id for t in odd.data] == made[1::2][::-1]
    assert odd.has_more is False
    before = client.v1.transfers.list(params={"ending_before": made[5], "limit": 3})
    assert [t.id for t in before.data] == [made[8], made[7], made[6]]
    by_destination = client.v1.transfers.list(params={"destination": account.id, "limit": 1})
    assert by_destination.data[0].id == made[-1]

    with pytest.raises(stripe.InvalidRequestError) as too_many:
        client.v1.transfers.list(params={"limit": 101})
    assert too_many.value.param == "limit"
    with pytest.raises(stripe.InvalidRequestError) as cursor:
        client.v1.transfers.list(params={"starting_after": "tr_nope"})
    assert (cursor.value.code, cursor.value.param) == ("resource_missing", "starting_after")


# --- Refunds ------------------------------------------------------------------------------


def test_refunds_default_to_the_rest_and_refuse_more(
    client: stripe.StripeClient, fake: FakeStripe
) -> None:
    intent = _charge(client, amount=5000)
    partial = client.v1.refunds.create(
        params={"payment_intent": intent.id, "amount": 1000, "reason": "requested_by_customer"}
    )
    assert partial.object == "refund"
    assert partial.id.startswith("re_")
    assert (partial.amount, partial.currency, partial.status) == (1000, "usd", "succeeded")
    assert (partial.payment_intent, partial.charge) == (intent.id, intent.latest_charge)

    with pytest.raises(stripe.InvalidRequestError) as too_much:
        client.v1.refunds.create(params={"payment_intent": intent.id, "amount": 4001})
    assert too_much.value.param == "amount"
    assert too_much.value.user_message == (
        "Refund amount ($40.01) is greater than unrefunded amount on charge ($40.00)"
    )

    rest = client.v1.refunds.create(params={"charge": intent.latest_charge})
    assert rest.amount == 4000
    assert client.v1.charges.retrieve(intent.latest_charge).refunded is True
    with pytest.raises(stripe.InvalidRequestError) as again:
        client.v1.refunds.create(params={"payment_intent": intent.id})
    assert again.value.code == "charge_already_refunded"

    unpaid = client.v1.payment_intents.create(params={"amount": 900, "currency": "usd"})
    with pytest.raises(stripe.InvalidRequestError) as not_paid:
        client.v1.refunds.create(params={"payment_intent": unpaid.id})
    assert not_paid.value.param == "payment_intent"

    listed = client.v1.refunds.list(params={"payment_intent": intent.id})
    assert [r.id for r in listed.data] == [rest.id, partial.id]
    page = client.v1.refunds.list(params={"limit": 1, "starting_after": rest.id})
    assert [r.id for r in page.data] == [partial.id]
    assert client.v1.refunds.retrieve(partial.id).amount == 1000
    assert fake.available_balance() == 0
    refunded = [event for event in fake.events if event["type"] == "charge.refunded"]
    assert [event["data"]["object"]["amount_refunded"] for event in refunded] == [1000, 5000]


# --- Events and webhooks --------------------------------------------------------------------


def test_events_are_listed_filtered_and_retrieved(
    client: stripe.StripeClient, fake: FakeStripe
) -> None:
    for _ in range(6):
        _charge(client, amount=700)
    succeeded = client.v1.events.list(params={"type": "payment_intent.succeeded", "limit": 4})
    assert len(succeeded.data) == 4
    assert succeeded.has_more is True
    every = list(
        client.v1.events.list(params={"type": "payment_intent.succeeded"}).auto_paging_iter()
    )
    assert len(every) == 6
    assert all(event.data.object.object == "payment_intent" for event in every)
    assert every[0].created >= every[-1].created
    wildcard = client.v1.events.list(params={"type": "payment_intent.*", "limit": 100})
    assert len(wildcard.data) == 12
    one = client.v1.events.retrieve(every[0].id)
    assert one.object == "event"
    assert one.livemode is False
    assert one.api_version
    assert one.request.id.startswith("req_")
    assert one.request.idempotency_key  # the client sends one with every POST
    assert one.type == "payment_intent.succeeded"
    assert fake.events[-1]["id"] == every[0].id
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.events.retrieve("evt_nope")


def test_signatures_verify_with_stripe_and_tampering_fails(fake: FakeStripe) -> None:
    payload = json.dumps({"id": "evt_1", "object": "event", "type": "ping"}).encode()
    header = fake.sign(payload)
    event = stripe.Webhook.construct_event(payload, header, fake.webhook_secret)
    assert event.id == "evt_1"
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(payload.replace(b"ping", b"pong"), header, "whsec_fake")
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(
            payload, fake.sign(payload, secret="whsec_other"), "whsec_fake"
        )
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(payload, fake.sign(payload, timestamp=1), "whsec_fake")


def test_deliver_posts_a_signed_event_to_a_webhook(
    client: stripe.StripeClient, fake: FakeStripe
) -> None:
    received: list[tuple[bytes, str]] = []

    class Endpoint(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((body, self.headers["Stripe-Signature"]))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    endpoint = ThreadingHTTPServer(("127.0.0.1", 0), Endpoint)
    threading.Thread(target=endpoint.serve_forever, args=(0.05,), daemon=True).start()
    try:
        intent = _charge(client)
        event_id = fake.events[-1]["id"]
        response = fake.deliver(event_id, f"http://127.0.0.1:{endpoint.server_address[1]}/hook")
    finally:
        endpoint.shutdown()
        endpoint.server_close()
    assert response.status_code == 200
    body, signature = received[0]
    event = stripe.Webhook.construct_event(body, signature, fake.webhook_secret)
    assert (event.id, event.type) == (event_id, "payment_intent.succeeded")
    assert event.data.object.id == intent.id


# --- Idempotency ----------------------------------------------------------------------------


def test_a_repeated_key_replays_and_a_changed_request_is_refused(
    client: stripe.StripeClient, fake: FakeStripe
) -> None:
    account = _account(client, onboarded=fake)
    _charge(client, amount=10_000)
    params = {"amount": 1500, "currency": "usd", "destination": account.id}
    first = client.v1.transfers.create(params=params, options={"idempotency_key": "payout-1"})
    replay = client.v1.transfers.create(params=params, options={"idempotency_key": "payout-1"})
    assert replay.id == first.id
    assert first.last_response.headers.get("Idempotent-Replayed") is None
    assert replay.last_response.headers["Idempotent-Replayed"] == "true"
    assert replay.last_response.headers["Original-Request"] == first.last_response.request_id
    assert len(fake.transfers) == 1

    with pytest.raises(stripe.IdempotencyError) as changed:
        client.v1.transfers.create(
            params={**params, "amount": 1501}, options={"idempotency_key": "payout-1"}
        )
    assert changed.value.http_status == 400
    with pytest.raises(stripe.IdempotencyError):
        client.v1.refunds.create(
            params={"payment_intent": "pi_x"}, options={"idempotency_key": "payout-1"}
        )
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.transfers.create(params=params, options={"idempotency_key": "k" * 256})
    assert [request[3] for request in fake.requests if request[1] == "/v1/transfers"][:2] == [
        "payout-1",
        "payout-1",
    ]


def test_what_the_idempotency_layer_keeps(client: stripe.StripeClient, fake: FakeStripe) -> None:
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.payment_intents.create(
            params={"amount": 10, "currency": "usd"}, options={"idempotency_key": "pay-1"}
        )
    # A validation error is not saved: the corrected request runs under the same key.
    fixed = client.v1.payment_intents.create(
        params={"amount": 1000, "currency": "usd"}, options={"idempotency_key": "pay-1"}
    )
    assert fixed.status == "requires_payment_method"

    # A decline is saved once the endpoint has begun: the retry replays it, charging nothing.
    declined = {
        "amount": 1000,
        "currency": "usd",
        "payment_method": "pm_card_chargeDeclined",
        "confirm": True,
        "automatic_payment_methods": NO_REDIRECTS,
    }
    errors = []
    for _ in range(2):
        with pytest.raises(stripe.CardError) as raised:
            client.v1.payment_intents.create(params=declined, options={"idempotency_key": "pay-2"})
        errors.append(raised.value)
    assert errors[0].error.payment_intent.id == errors[1].error.payment_intent.id
    assert errors[1].headers["Idempotent-Replayed"] == "true"
    assert len(fake.payment_intents) == 2


def test_concurrent_retries_with_one_key_make_one_transfer(
    client: stripe.StripeClient, fake: FakeStripe
) -> None:
    account = _account(client, onboarded=fake)
    _charge(client, amount=10_000)
    ids: list[str] = []

    def pay() -> None:
        transfer = client.v1.transfers.create(
            params={"amount": 900, "currency": "usd", "destination": account.id},
            options={"idempotency_key": "same-payout"},
        )
        ids.append(transfer.id)

    threads = [threading.Thread(target=pay) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(ids)) == 1
    assert len(ids) == 8
    assert len(fake.transfers) == 1


# --- Failures, authentication, limits ------------------------------------------------------------


def test_injected_failures_are_api_errors(client: stripe.StripeClient, fake: FakeStripe) -> None:
    fake.fail_next("POST", "/v1/accounts", status=500, count=2)
    for _ in range(2):
        with pytest.raises(stripe.APIError) as failed:
            _account(client)
        assert failed.value.http_status == 500
        assert failed.value.request_id.startswith("req_")
    assert _account(client).id in fake.accounts
    fake.fail_next("GET", "/v1/events", status=503)
    with pytest.raises(stripe.APIError):
        client.v1.events.list()


@pytest.mark.usefixtures("no_retry_sleep")
def test_a_lost_response_is_retried_into_a_replay(fake: FakeStripe) -> None:
    retrying = stripe.StripeClient(
        API_KEY, base_addresses={"api": fake.base_url}, max_network_retries=2
    )
    account = _account(retrying, onboarded=fake)
    _charge(retrying, amount=5000)
    fake.fail_next("POST", "/v1/transfers", status=502, after_execution=True)
    transfer = retrying.v1.transfers.create(
        params={"amount": 5000, "currency": "usd", "destination": account.id}
    )
    assert transfer.last_response.headers["Idempotent-Replayed"] == "true"
    attempts = [request for request in fake.requests if request[1] == "/v1/transfers"]
    assert len(attempts) == 2
    assert attempts[0][3] == attempts[1][3]
    assert list(fake.transfers) == [transfer.id]

    # A failure before the endpoint runs is not saved: the retry runs the request.
    _charge(retrying, amount=5000)
    fake.fail_next("POST", "/v1/transfers", status=500)
    second = retrying.v1.transfers.create(
        params={"amount": 5000, "currency": "usd", "destination": account.id}
    )
    assert second.last_response.headers.get("Idempotent-Replayed") is None
    assert list(fake.transfers) == [transfer.id, second.id]


def test_bad_credentials_are_authentication_errors(fake: FakeStripe) -> None:
    wrong = stripe.StripeClient(
        "sk_test_wrong_key_1234", base_addresses={"api": fake.base_url}, max_network_retries=0
    )
    with pytest.raises(stripe.AuthenticationError) as refused:
        wrong.v1.events.list()
    assert refused.value.http_status == 401
    assert "sk_test_" in (refused.value.user_message or "")
    assert "wrong_key" not in (refused.value.user_message or "")

    anonymous = httpx.get(f"{fake.base_url}/v1/events")
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["type"] == "invalid_request_error"
    basic = httpx.get(f"{fake.base_url}/v1/events", auth=(API_KEY, ""))
    assert basic.status_code == 200


def test_every_answer_carries_a_request_id_and_stripes_error_shape(fake: FakeStripe) -> None:
    answers = [
        _raw(fake, "GET", "/v1/balance"),
        _raw(fake, "GET", "/v1/nowhere"),
        _raw(fake, "DELETE", "/v1/transfers"),
        _raw(fake, "POST", "/v1/transfers", content=b'{"amount": 1}',
             headers={"Content-Type": "application/json"}),
        _raw(fake, "POST", "/v1/transfers", data={"amount": "1", "colour": "red"}),
        _raw(fake, "POST", "/v1/transfers", content=b"x" * (1024 * 1024 + 1),
             headers={"Content-Type": "application/x-www-form-urlencoded"}),
        _raw(fake, "GET", "/v1/balance", headers={"Stripe-Account": "acct_123"}),
    ]  # fmt: skip
    assert [answer.status_code for answer in answers] == [200, 404, 404, 400, 400, 413, 400]
    for answer in answers:
        assert answer.headers["Request-Id"].startswith("req_")
    for answer in answers[1:]:
        error = answer.json()["error"]
        assert error["type"] == "invalid_request_error"
        assert error["message"]
    assert answers[4].json()["error"]["param"] == "colour"
    assert answers[4].json()["error"]["message"] == "Received unknown parameter: colour"


def test_form_bodies_nest_like_stripes(fake: FakeStripe) -> None:
    answer = _raw(
        fake,
        "POST",
        "/v1/accounts",
        content=(
            b"type=express&capabilities[transfers][requested]=true&metadata[job_id]=j%201"
            b"&metadata[round]=2"
        ),
        headers={"Content-Type": "application/x-www-form-urlencoded", "Idempotency-Key": "nest"},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["metadata"] == {"job_id": "j 1", "round": "2"}
    assert fake.requests[-1] == (
        "POST",
        "/v1/accounts",
        {
            "type": "express",
            "capabilities": {"transfers": {"requested": "true"}},
            "metadata": {"job_id": "j 1", "round": "2"},
        },
        "nest",
    )
    bad = _raw(
        fake,
        "POST",
        "/v1/accounts",
        content=b"type=express&capabilities[transfers][requested]=yes",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert bad.json()["error"]["param"] == "capabilities[transfers][requested]"
