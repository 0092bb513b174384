"""A local fake of Stripe's v1 HTTP API on loopback, so that the payment rail can be tested
with the real ``stripe`` client and no network.

Point the client at it with ``stripe.StripeClient(key, base_addresses={"api": fake.start()})``.
It listens on 127.0.0.1 only, never talks to Stripe, and keeps everything in memory; it must
never be used outside tests.

Faithful to Stripe's documented behaviour, closely enough that the client parses every answer:

- Authentication: ``Authorization: Bearer <key>`` or Basic (``<key>:``); anything else is a 401
  ``invalid_request_error``, as Stripe answers.
- Parameters: form-encoded bodies (query strings for GET) with bracket nesting
  (``metadata[job_id]``, ``capabilities[transfers][requested]``, ``types[]``); Stripe's
  checks on integers, booleans, enums, currencies, URLs, e-mails and metadata limits; an unknown
  parameter is ``Received unknown parameter: x`` (code ``parameter_unknown``, param ``x``), a
  missing one ``Missing required param: x.``; bodies over 1 MiB are refused (413).
- Idempotency (POST): keys scoped to the API key, at most 255 characters; the first response
  is saved once the endpoint has begun (so declines, ``balance_insufficient`` and missing
  objects are replayed, parameter-validation errors are not), and a replay returns the same
  status and body with ``Idempotent-Replayed: true`` and ``Original-Request``; the same key with
  other parameters or another endpoint is a 400 ``idempotency_error``.
- Every response carries ``Request-Id: req_...`` and ``Stripe-Version``; errors have ``type``,
  ``message`` and, where Stripe gives them, ``code``, ``param``, ``doc_url``, ``decline_code``.
- Objects use Stripe's field names and id prefixes (``acct_``, ``pi_``, ``ch_``, ``pm_``,
  ``tr_``, ``re_``, ``txn_``, ``evt_``); ``livemode`` appears where Stripe's object has it
  (not on Account, AccountLink or Refund). Lists are ``{"object": "list", ...}``, newest first,
  with ``limit`` (1-100, default 10), ``starting_after``, ``ending_before`` and ``created``.
- Endpoints: ``POST /v1/accounts``, ``GET /v1/accounts/{id}``, ``POST /v1/account_links``,
  ``POST /v1/payment_intents``, ``GET /v1/payment_intents/{id}``,
  ``POST /v1/payment_intents/{id}/confirm``, ``GET /v1/charges/{id}``, ``POST|GET
  /v1/transfers``, ``GET /v1/transfers/{id}``, ``POST|GET /v1/refunds``,
  ``GET /v1/refunds/{id}``, ``GET /v1/events``, ``GET /v1/events/{id}``, ``GET /v1/balance``.
  Anything else is Stripe's 404 ``Unrecognized request URL``.
- Rules that bite in production: test payment methods (``pm_card_visa`` succeeds,
  ``pm_card_chargeDeclined*`` is a 402 ``card_error`` carrying the ``payment_intent``,
  ``pm_card_authenticationRequired`` needs action, or is declined ``authentication_required``
  off-session) resolve to fresh ``pm_`` ids that cannot be reused by another PaymentIntent;
  confirming with automatic payment methods needs ``return_url`` unless
  ``allow_redirects=never``; charge minimums (``amount_too_small``) and maximums; Express and
  Custom accounts must request a capability; a transfer needs an existing destination whose
  ``transfers`` capability is active (``insufficient_capabilities_for_transfer``) and enough
  available balance (``balance_insufficient``), or a ``source_transaction``; refunds default to
  the unrefunded rest and refuse more (``Refund amount ($X) is greater than unrefunded amount on
  charge ($Y)``, ``charge_already_refunded``).
- Events (``account.updated`` with ``previous_attributes`` and ``account``,
  ``payment_intent.created``/``succeeded``/``payment_failed``/``requires_action``,
  ``charge.succeeded``/``failed``/``refunded``, ``transfer.created``, ``refund.created``) with
  the triggering request's id and idempotency key; webhook signatures use Stripe's scheme
  (``t=<unix>,v1=<hex HMAC-SHA256 of "t.payload">``).

Knowingly left out (so that code relying on it fails loudly rather than passing here):

- Stripe's fees, and pending funds: a succeeded charge is at once *available* (in test mode a
  ``pm_card_visa`` charge lands in the pending balance, and only ``pm_card_bypassPending`` or a
  ``source_transaction`` lets a transfer spend it at once). Refunds never fail for want of
  balance (the balance may go negative).
- Every endpoint and parameter not listed (customers, ``expand``, ``capture_method``,
  ``on_behalf_of``, transfer reversals, payouts, account updates...): unknown parameters are
  refused, as Stripe refuses misspelt ones. Requests on behalf of a connected account
  (``Stripe-Account`` / ``Stripe-Context`` headers) are refused with a 400 that says so.
- Platform-level configuration (approval for ``transfers`` without ``card_payments``,
  cross-border rules), webhook endpoints and automatic delivery (``pending_webhooks`` is 0; use
  ``deliver``), rate limits, 3-D Secure completion, API-version differences (answers follow the
  version the client sends), live mode.
- Concurrent requests are serialised by one lock, so Stripe's 409 for two in-flight requests
  with one idempotency key never happens here: the second waits and is replayed.
- Where Stripe does not document an error's exact wording, the message is a close paraphrase;
  ``type``, ``code``, ``param`` and the HTTP status are Stripe's.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import itertools
import json
import operator
import re
import secrets
import string
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self
from urllib.parse import parse_qsl, urlsplit

if TYPE_CHECKING:
    import httpx

#: The API version reported when the client sends none (the one `stripe` 16.1.0 pins).
DEFAULT_API_VERSION = "2026-10-28.endive"
#: Request bodies above this many bytes are refused with a 413.
MAX_BODY_BYTES = 1024 * 1024
#: At most this many form fields in one request, and this many levels of brackets.
MAX_PARAMETERS = 1000
MAX_NESTING = 5
#: Stripe's limit on idempotency keys.
MAX_IDEMPOTENCY_KEY = 255
#: An Account Link expires this many seconds after it is created.
ACCOUNT_LINK_LIFETIME = 300

JSONObject = dict[str, Any]


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


CURRENCIES = _words(
    "usd aed afn all amd ang aoa ars aud awg azn bam bbd bdt bgn bif bmd bnd bob brl bsd bwp "
    "byn bzd cad cdf chf clp cny cop crc cve czk djf dkk dop dzd egp etb eur fjd fkp gbp gel "
    "gip gmd gnf gtq gyd hkd hnl htg huf idr ils inr isk jmd jpy kes kgs khr kmf krw kyd kzt "
    "lak lbp lkr lrd lsl mad mdl mga mkd mmk mnt mop mur mvr mwk mxn myr mzn nad ngn nio nok "
    "npr nzd pab pen pgk php pkr pln pyg qar ron rsd rub rwf sar sbd scr sek sgd shp sle sos "
    "srd std szl thb tjs top try ttd twd tzs uah ugx uyu uzs vnd vuv wst xaf xcd xof xpf yer "
    "zar zmw"
)
ZERO_DECIMAL_CURRENCIES = _words("bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf")
#: Stripe's minimum charge amounts, in minor units, for the currencies it publishes them for.
MINIMUM_CHARGE = {
    "usd": 50, "aed": 200, "aud": 50, "bgn": 100, "brl": 50, "cad": 50, "chf": 50,
    "czk": 1500, "dkk": 250, "eur": 50, "gbp": 30, "hkd": 400, "huf": 17500, "inr": 50,
    "jpy": 50, "mxn": 1000, "myr": 200, "nok": 300, "nzd": 50, "pln": 200, "ron": 200,
    "sek": 300, "sgd": 50, "thb": 1000,
}  # fmt: skip
MAXIMUM_CHARGE = 99_999_999
_SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£", "jpy": "¥"}
_EURO_COUNTRIES = _words("AT BE CY DE EE ES FI FR GR HR IE IT LT LU LV MT NL PT SI SK")
#: Countries a connected account may be created in, and the default currency of each.
COUNTRY_CURRENCIES = {
    **dict.fromkeys(_EURO_COUNTRIES, "eur"),
    "US": "usd", "CA": "cad", "GB": "gbp", "GI": "gbp", "AU": "aud", "NZ": "nzd",
    "JP": "jpy", "SG": "sgd", "HK": "hkd", "CH": "chf", "LI": "chf", "NO": "nok",
    "SE": "sek", "DK": "dkk", "PL": "pln", "CZ": "czk", "HU": "huf", "RO": "ron",
    "BG": "bgn", "MX": "mxn", "BR": "brl", "IN": "inr", "TH": "thb", "MY": "myr",
    "AE": "aed",
}  # fmt: skip
CAPABILITIES = _words(
    "acss_debit_payments affirm_payments afterpay_clearpay_payments bacs_debit_payments "
    "bancontact_payments card_payments eps_payments ideal_payments klarna_payments "
    "link_payments p24_payments sepa_debit_payments tax_reporting_us_1099_k transfers "
    "us_bank_account_ach_payments"
)
_ONBOARDING_DUE = [
    "business_profile.mcc",
    "business_profile.url",
    "business_type",
    "external_account",
    "tos_acceptance.date",
    "tos_acceptance.ip",
]


# --- Errors --------------------------------------------------------------------------------


class _StripeError(Exception):
    """A Stripe error answer. ``saved`` says whether the idempotency layer keeps it: Stripe
    keeps results once an endpoint has begun, not parameter-validation failures."""

    def __init__(
        self,
        status: int,
        kind: str,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        saved: bool = True,
        extra: JSONObject | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message
        self.code = code
        self.param = param
        self.saved = saved
        self.extra = extra or {}
        self.headers = dict(headers or {})

    def payload(self, request_id: str) -> JSONObject:
        error: JSONObject = {}
        if self.code is not None:
            error["code"] = self.code
            error["doc_url"] = f"https://stripe.com/docs/error-codes/{self.code.replace('_', '-')}"
        error["message"] = self.message
        if self.param is not None:
            error["param"] = self.param
        error["request_log_url"] = f"https://dashboard.stripe.com/test/logs/{request_id}"
        error["type"] = self.kind
        error.update(self.extra)
        return {"error": error}


def _invalid(
    message: str, param: str | None = None, code: str | None = None, *, saved: bool = False
) -> _StripeError:
    return _StripeError(400, "invalid_request_error", message, code=code, param=param, saved=saved)


def _missing(param: str) -> _StripeError:
    return _invalid(f"Missing required param: {param}.", param, "parameter_missing")


def _no_such(kind: str, object_id: str, param: str, *, status: int = 400) -> _StripeError:
    return _StripeError(
        status,
        "invalid_request_error",
        f"No such {kind}: '{object_id}'",
        code="resource_missing",
        param=param,
    )


# --- Form parsing and parameter checks ------------------------------------------------------

_KEY = re.compile(r"([^\[\]]+)((?:\[[^\[\]]*\])*)")
_SEGMENT = re.compile(r"\[([^\[\]]*)\]")
_INTEGER = re.compile(r"-?[0-9]+")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")

Check = Callable[[Any, str], Any]


def parse_form(text: str) -> JSONObject:
    """Stripe's form encoding as nested dicts: ``a[b][c]=1`` is ``{"a": {"b": {"c": "1"}}}``
    and ``a[]=1&a[]=2`` is ``{"a": ["1", "2"]}``; indexed arrays (``a[0]``) stay dicts with
    digit keys until a parameter check asks for an array. Values stay strings."""
    try:
        pairs = parse_qsl(
            text, keep_blank_values=True, max_num_fields=MAX_PARAMETERS, errors="strict"
        )
    except UnicodeDecodeError as error:
        raise _invalid("Invalid request: the parameters are not valid UTF-8.") from error
    except ValueError as error:
        raise _invalid(f"Too many parameters: at most {MAX_PARAMETERS} are accepted.") from error
    root: JSONObject = {}
    for raw_key, value in pairs:
        match = _KEY.fullmatch(raw_key)
        if match is None:
            raise _invalid(f"Invalid parameter name: {raw_key}", raw_key)
        names = [match.group(1), *_SEGMENT.findall(match.group(2))]
        if len(names) > MAX_NESTING:
            raise _invalid(f"Parameter nested too deeply: {raw_key}", raw_key)
        _insert(root, names, value, raw_key)
    return root


def _insert(root: JSONObject, names: list[str], value: str, raw_key: str) -> None:
    append = names[-1] == ""
    if append:
        names = names[:-1]
    if "" in names:
        raise _invalid("Invalid array", raw_key)
    node = root
    for depth, name in enumerate(names[:-1]):
        child = node.setdefault(name, {})
        if not isinstance(child, dict):
            raise _invalid("Invalid hash", _bracketed(names[: depth + 1]))
        node = child
    leaf = names[-1]
    if append:
        items = node.setdefault(leaf, [])
        if not isinstance(items, list):
            raise _invalid("Invalid array", _bracketed(names))
        items.append(value)
    elif isinstance(node.get(leaf), dict | list):
        raise _invalid("Invalid hash", _bracketed(names))
    else:
        node[leaf] = value


def _bracketed(names: list[str]) -> str:
    return names[0] + "".join(f"[{name}]" for name in names[1:])


def _render(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _validate(raw: Mapping[str, Any], spec: Mapping[str, Check], prefix: str = "") -> JSONObject:
    """Check each parameter against ``spec`` and convert it; unknown ones are refused by name,
    and empty strings (Stripe's "unset") are dropped."""
    result: JSONObject = {}
    for key, value in raw.items():
        path = f"{prefix}[{key}]" if prefix else key
        check = spec.get(key)
        if check is None:
            raise _invalid(f"Received unknown parameter: {path}", path, "parameter_unknown")
        converted = check(value, path)
        if converted is not None:
            result[key] = converted
    return result


def _text(max_length: int = 5000) -> Check:
    def check(value: Any, path: str) -> str | None:
        if not isinstance(value, str):
            raise _invalid(f"Invalid string: {_render(value)}", path)
        if value == "":
            return None
        if len(value) > max_length:
            raise _invalid(
                f"Invalid string: {value[:20]}...; must be at most {max_length} characters", path
            )
        return value

    return check


def _integer(minimum: int | None = None, maximum: int | None = None) -> Check:
    def check(value: Any, path: str) -> int:
        if not isinstance(value, str) or not _INTEGER.fullmatch(value) or len(value) > 19:
            raise _invalid(f"Invalid integer: {_render(value)}", path, "parameter_invalid_integer")
        number = int(value)
        if minimum is not None and number < minimum:
            raise _invalid(f"This value must be greater than or equal to {minimum}.", path)
        if maximum is not None and number > maximum:
            raise _invalid(f"This value must be less than or equal to {maximum}.", path)
        return number

    return check


def _boolean(value: Any, path: str) -> bool:
    if value not in ("true", "false"):
        raise _invalid(f"Invalid boolean: {_render(value)}", path)
    return bool(value == "true")


def _one_of(*choices: str) -> Check:
    listed = ", ".join(choices[:-1]) + (", or " if len(choices) > 2 else " or ") + choices[-1]

    def check(value: Any, path: str) -> str | None:
        if value == "":
            return None
        if value not in choices:
            raise _invalid(f"Invalid {path}: must be one of {listed}", path)
        return str(value)

    return check


def _currency(value: Any, path: str) -> str:
    code = value.lower() if isinstance(value, str) else ""
    if code not in CURRENCIES:
        raise _invalid(
            f"Invalid currency: {_render(value)}. Stripe currently supports these currencies: "
            + ", ".join(sorted(CURRENCIES)),
            path,
        )
    return code


def _country(value: Any, path: str) -> str:
    code = value.upper() if isinstance(value, str) else ""
    if code not in COUNTRY_CURRENCIES:
        raise _invalid(
            f"Country '{_render(value)}' is unknown. Try using a 2-character alphanumeric country "
            "code instead, such as 'US', 'EG', or 'GB'.",
            path,
        )
    return code


def _email(value: Any, path: str) -> str | None:
    if value == "":
        return None
    if not isinstance(value, str) or not _EMAIL.fullmatch(value) or len(value) > 800:
        raise _invalid(f"Invalid email address: {_render(value)}", path, "email_invalid")
    return value


def _url(value: Any, path: str) -> str | None:
    if value == "":
        return None
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise _invalid("Not a valid URL", path, "url_invalid")
    return str(value)


def _metadata(value: Any, path: str) -> dict[str, str]:
    if value == "":
        return {}
    if not isinstance(value, dict):
        raise _invalid("Invalid object", path)
    if len(value) > 50:
        raise _invalid(
            f"Invalid metadata: metadata can have up to 50 keys, but you passed in "
            f"{len(value)} keys.",
            path,
        )
    result: dict[str, str] = {}
    for key, item in value.items():
        if len(key) > 40:
            raise _invalid(
                f"Invalid metadata: metadata keys can be up to 40 characters long, but you "
                f"passed in a key that is {len(key)} characters: {key}",
                f"{path}[{key}]",
            )
        if not isinstance(item, str):
            raise _invalid(f"Invalid string: {_render(item)}", f"{path}[{key}]")
        if len(item) > 500:
            raise _invalid(
                f"Invalid metadata: metadata values can be up to 500 characters long, but you "
                f"passed in a value that is {len(item)} characters.",
                f"{path}[{key}]",
            )
        if item != "":
            result[key] = item
    return result


def _hash(spec: Mapping[str, Check], required: tuple[str, ...] = ()) -> Check:
    def check(value: Any, path: str) -> JSONObject:
        if not isinstance(value, dict):
            raise _invalid("Invalid object", path)
        result = _validate(value, spec, path)
        for name in required:
            if name not in result:
                raise _missing(f"{path}[{name}]")
        return result

    return check


def _array(item: Check, max_items: int = 20) -> Check:
    def check(value: Any, path: str) -> list[Any]:
        if isinstance(value, dict) and all(key.isdigit() for key in value):
            items = [value[key] for key in sorted(value, key=int)]
        elif isinstance(value, list):
            items = value
        else:
            raise _invalid("Invalid array", path)
        if len(items) > max_items:
            raise _invalid(f"Invalid array: at most {max_items} items are accepted", path)
        return [item(element, f"{path}[{index}]") for index, element in enumerate(items)]

    return check


def _created_filter(value: Any, path: str) -> JSONObject:
    if isinstance(value, str):
        return {"eq": _integer()(value, path)}
    bounds: JSONObject = _hash({name: _integer() for name in ("gt", "gte", "lt", "lte")})(
        value, path
    )
    return bounds


_LIST_SPEC: dict[str, Check] = {
    "limit": _integer(1, 100),
    "starting_after": _text(),
    "ending_before": _text(),
    "created": _created_filter,
}
_ACCOUNT_SPEC: dict[str, Check] = {
    "type": _one_of("custom", "express", "standard"),
    "country": _country,
    "email": _email,
    "capabilities": _hash({name: _hash({"requested": _boolean}) for name in CAPABILITIES}),
    "business_type": _one_of("company", "government_entity", "individual", "non_profit"),
    "default_currency": _currency,
    "metadata": _metadata,
}
_ACCOUNT_LINK_SPEC: dict[str, Check] = {
    "account": _text(),
    "refresh_url": _url,
    "return_url": _url,
    "type": _one_of("account_onboarding", "account_update"),
}
_CONFIRM_SPEC: dict[str, Check] = {
    "payment_method": _text(),
    "return_url": _url,
    "off_session": _boolean,
}
_PAYMENT_INTENT_SPEC: dict[str, Check] = {
    **_CONFIRM_SPEC,
    "amount": _integer(1),
    "currency": _currency,
    "confirm": _boolean,
    "transfer_group": _text(),
    "description": _text(1000),
    "metadata": _metadata,
    "automatic_payment_methods": _hash(
        {"enabled": _boolean, "allow_redirects": _one_of("always", "never")},
        required=("enabled",),
    ),
    "payment_method_types": _array(_text(), max_items=50),
}
_TRANSFER_SPEC: dict[str, Check] = {
    "amount": _integer(1),
    "currency": _currency,
    "destination": _text(),
    "transfer_group": _text(),
    "description": _text(),
    "source_transaction": _text(),
    "metadata": _metadata,
}
_REFUND_SPEC: dict[str, Check] = {
    "payment_intent": _text(),
    "charge": _text(),
    "amount": _integer(1),
    "reason": _one_of("duplicate", "fraudulent", "requested_by_customer"),
    "metadata": _metadata,
}
_TRANSFER_LIST_SPEC = {**_LIST_SPEC, "destination": _text(), "transfer_group": _text()}
_REFUND_LIST_SPEC = {**_LIST_SPEC, "payment_intent": _text(), "charge": _text()}
_EVENT_LIST_SPEC = {**_LIST_SPEC, "type": _text(), "types": _array(_text())}


# --- Test payment methods -----------------------------------------------------------------


@dataclass(frozen=True)
class _TestCard:
    """What a Stripe test payment method does when a PaymentIntent is confirmed with it."""

    brand: str
    last4: str
    outcome: Literal["succeed", "decline", "authenticate"] = "succeed"
    code: str | None = None
    decline_code: str | None = None
    message: str | None = None


_DECLINED = "Your card was declined."
_TEST_CARDS = {
    "pm_card_visa": _TestCard("visa", "4242"),
    "pm_card_visa_debit": _TestCard("visa", "5556"),
    "pm_card_mastercard": _TestCard("mastercard", "4444"),
    "pm_card_amex": _TestCard("amex", "8431"),
    "pm_card_bypassPending": _TestCard("visa", "0077"),
    "pm_card_chargeDeclined": _TestCard(
        "visa", "0002", "decline", "card_declined", "generic_decline", _DECLINED
    ),
    "pm_card_chargeDeclinedInsufficientFunds": _TestCard(
        "visa", "9995", "decline", "card_declined", "insufficient_funds",
        "Your card has insufficient funds.",
    ),
    "pm_card_chargeDeclinedLostCard": _TestCard(
        "visa", "9987", "decline", "card_declined", "lost_card", _DECLINED
    ),
    "pm_card_chargeDeclinedStolenCard": _TestCard(
        "visa", "9979", "decline", "card_declined", "stolen_card", _DECLINED
    ),
    "pm_card_chargeDeclinedFraudulent": _TestCard(
        "visa", "0019", "decline", "card_declined", "fraudulent", _DECLINED
    ),
    "pm_card_chargeDeclinedExpiredCard": _TestCard(
        "visa", "0069", "decline", "expired_card", "expired_card", "Your card has expired."
    ),
    "pm_card_chargeDeclinedIncorrectCvc": _TestCard(
        "visa", "0127", "decline", "incorrect_cvc", "incorrect_cvc",
        "Your card's security code is incorrect.",
    ),
    "pm_card_chargeDeclinedProcessingError": _TestCard(
        "visa", "0119", "decline", "processing_error", "processing_error",
        "An error occurred while processing your card. Try again in a little bit.",
    ),
    "pm_card_authenticationRequired": _TestCard("visa", "3184", "authenticate"),
    "pm_card_threeDSecure2Required": _TestCard("visa", "3220", "authenticate"),
}  # fmt: skip
_ANY_OTHER_TEST_CARD = _TestCard("visa", "4242")
_AUTHENTICATION_REQUIRED = _TestCard(
    "visa",
    "3184",
    "decline",
    "authentication_required",
    "authentication_required",
    "Your card was declined. This transaction requires authentication.",
)
_RETURN_URL_NEEDED = (
    "This PaymentIntent is configured to accept payment methods enabled in your Dashboard. "
    "Because some of these payment methods might redirect your customer off of your page, you "
    "must provide a `return_url`. If you don't want to accept redirect-based payment methods, "
    "set `automatic_payment_methods[enabled]` to `true` and "
    "`automatic_payment_methods[allow_redirects]` to `never` when creating Setup Intents and "
    "Payment Intents."
)
_NO_PAYMENT_METHOD = (
    "You cannot confirm this PaymentIntent because it's missing a payment method. You can "
    "either update the PaymentIntent with a payment method and then confirm it again, or "
    "confirm it again directly with a payment method."
)


# --- Small helpers ------------------------------------------------------------------------

_ALPHABET = string.ascii_letters + string.digits


def _new_id(prefix: str, length: int = 24) -> str:
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(length))


def _money(amount: int, currency: str) -> str:
    """An amount as Stripe writes it in messages: ``$12.50``, ``€7.00``, ``1,500 HUF``."""
    if currency in ZERO_DECIMAL_CURRENCIES:
        text = f"{amount:,}"
    else:
        major, minor = divmod(amount, 100)
        text = f"{major:,}.{minor:02d}"
    symbol = _SYMBOLS.get(currency)
    return f"{symbol}{text}" if symbol else f"{text} {currency.upper()}"


def _mask(api_key: str) -> str:
    if len(api_key) <= 12:
        return "*" * len(api_key)
    return api_key[:8] + "*" * (len(api_key) - 12) + api_key[-4:]


def _empty_list(url: str) -> JSONObject:
    return {"object": "list", "data": [], "has_more": False, "total_count": 0, "url": url}


def _requirements(due: list[str]) -> JSONObject:
    return {
        "alternatives": [],
        "current_deadline": None,
        "currently_due": list(due),
        "disabled_reason": "requirements.past_due" if due else None,
        "errors": [],
        "eventually_due": list(due),
        "past_due": list(due),
        "pending_verification": [],
    }


def _controller(account_type: str) -> JSONObject:
    if account_type == "custom":
        return {
            "fees": {"payer": "application"},
            "is_controller": True,
            "losses": {"payments": "application"},
            "requirement_collection": "application",
            "stripe_dashboard": {"type": "none"},
            "type": "application",
        }
    express = account_type == "express"
    return {
        "fees": {"payer": "application" if express else "account"},
        "is_controller": True,
        "losses": {"payments": "application" if express else "stripe"},
        "requirement_collection": "stripe",
        "stripe_dashboard": {"type": "express" if express else "full"},
        "type": "application",
    }


@dataclass
class _Call:
    """One API request as the endpoints see it."""

    params: JSONObject
    request_id: str
    idempotency_key: str | None
    api_version: str


@dataclass(frozen=True)
class _Reply:
    status: int
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True)
class _Saved:
    """The first response to one idempotency key."""

    method: str
    path: str
    fingerprint: str
    status: int
    body: bytes
    request_id: str


@dataclass
class _Failure:
    method: str
    path_prefix: str
    status: int
    remaining: int
    after_execution: bool


@dataclass
class _AccountLink:
    account_id: str
    refresh_url: str
    return_url: str
    expires_at: int
    used: bool = False


Endpoint = Callable[[_Call, str], JSONObject]


# --- The fake ---------------------------------------------------------------------------


class FakeStripe:
    """Stripe's v1 API for the endpoints the payment rail uses, served on 127.0.0.1.

    Start it (``start()`` or ``with FakeStripe() as fake:``), point a ``stripe.StripeClient``
    at ``base_url``, and inspect what happened through ``requests``, ``accounts``,
    ``payment_intents``, ``charges``, ``transfers``, ``refunds`` and ``events`` (copies, taken
    under the lock). ``complete_onboarding``, ``fail_next``, ``sign`` and ``deliver`` stand in
    for what happens outside the API: a person onboarding, Stripe failing, Stripe calling a
    webhook. All state sits behind one lock, so tests may drive it from many threads.
    """

    def __init__(
        self,
        api_key: str = "sk_test_fake",
        webhook_secret: str = "whsec_fake",  # noqa: S107 - a test secret
    ) -> None:
        """Create a stopped fake that accepts ``api_key`` and signs webhooks with
        ``webhook_secret``."""
        self.api_key = api_key
        self.webhook_secret = webhook_secret
        self._lock = threading.RLock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._base_url: str | None = None
        self._sequence = itertools.count()
        self._order: dict[str, int] = {}
        self._accounts: dict[str, JSONObject] = {}
        self._account_links: dict[str, _AccountLink] = {}
        self._payment_intents: dict[str, JSONObject] = {}
        self._payment_methods: dict[str, JSONObject] = {}
        self._cards: dict[str, _TestCard] = {}
        self._payment_method_users: dict[str, str] = {}
        self._charges: dict[str, JSONObject] = {}
        self._transfers: dict[str, JSONObject] = {}
        self._refunds: dict[str, JSONObject] = {}
        self._events: dict[str, JSONObject] = {}
        self._saved: dict[tuple[str, str], _Saved] = {}
        self._failures: list[_Failure] = []
        self._requests: list[tuple[str, str, JSONObject, str | None]] = []
        self._routes: list[tuple[str, re.Pattern[str], Endpoint]] = [
            ("POST", re.compile(r"/v1/accounts"), self._create_account),
            ("GET", re.compile(r"/v1/accounts/([^/]+)"), self._retrieve_account),
            ("POST", re.compile(r"/v1/account_links"), self._create_account_link),
            ("POST", re.compile(r"/v1/payment_intents"), self._create_payment_intent),
            ("GET", re.compile(r"/v1/payment_intents/([^/]+)"), self._retrieve_payment_intent),
            ("POST", re.compile(r"/v1/payment_intents/([^/]+)/confirm"), self._confirm_intent),
            ("GET", re.compile(r"/v1/charges/([^/]+)"), self._retrieve_charge),
            ("POST", re.compile(r"/v1/transfers"), self._create_transfer),
            ("GET", re.compile(r"/v1/transfers"), self._list_transfers),
            ("GET", re.compile(r"/v1/transfers/([^/]+)"), self._retrieve_transfer),
            ("POST", re.compile(r"/v1/refunds"), self._create_refund),
            ("GET", re.compile(r"/v1/refunds"), self._list_refunds),
            ("GET", re.compile(r"/v1/refunds/([^/]+)"), self._retrieve_refund),
            ("GET", re.compile(r"/v1/events"), self._list_events),
            ("GET", re.compile(r"/v1/events/([^/]+)"), self._retrieve_event),
            ("GET", re.compile(r"/v1/balance"), self._retrieve_balance),
        ]

    # -- Lifecycle --------------------------------------------------------------------------

    def start(self) -> str:
        """Serve on a free loopback port in a daemon thread; return the base URL
        (``http://127.0.0.1:PORT``). Starting a started fake returns the same URL."""
        with self._lock:
            if self._base_url is not None:
                return self._base_url
            server = _Server(self)
            host, port = server.server_address[:2]
            self._server = server
            self._base_url = f"http://{host!s}:{port}"
            self._thread = threading.Thread(
                target=server.serve_forever, args=(0.05,), name="fake-stripe", daemon=True
            )
            self._thread.start()
            return self._base_url

    def stop(self) -> None:
        """Stop serving and free the port; the recorded state stays readable."""
        with self._lock:
            server, thread = self._server, self._thread
            self._server = self._thread = None
            self._base_url = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> Self:
        """Start the fake; see ``start``."""
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stop the fake; see ``stop``."""
        self.stop()

    @property
    def base_url(self) -> str:
        """The URL the fake serves on; it must have been started."""
        if self._base_url is None:
            raise RuntimeError("FakeStripe is not started")
        return self._base_url

    # -- What happened ----------------------------------------------------------------------

    @property
    def requests(self) -> list[tuple[str, str, JSONObject, str | None]]:
        """Every API request seen, oldest first: (method, path, parsed params, idempotency
        key or None)."""
        with self._lock:
            return copy.deepcopy(self._requests)

    @property
    def accounts(self) -> dict[str, JSONObject]:
        """Connected accounts by id, as Stripe would return them now."""
        with self._lock:
            return copy.deepcopy(self._accounts)

    @property
    def payment_intents(self) -> dict[str, JSONObject]:
        """PaymentIntents by id."""
        with self._lock:
            return copy.deepcopy(self._payment_intents)

    @property
    def charges(self) -> dict[str, JSONObject]:
        """Charges (succeeded and failed) by id."""
        with self._lock:
            return copy.deepcopy(self._charges)

    @property
    def transfers(self) -> dict[str, JSONObject]:
        """Transfers by id."""
        with self._lock:
            return copy.deepcopy(self._transfers)

    @property
    def refunds(self) -> dict[str, JSONObject]:
        """Refunds by id."""
        with self._lock:
            return copy.deepcopy(self._refunds)

    @property
    def events(self) -> list[JSONObject]:
        """Every event recorded, oldest first (``GET /v1/events`` lists them newest first)."""
        with self._lock:
            return copy.deepcopy(list(self._events.values()))

    def available_balance(self, currency: str = "usd") -> int:
        """The platform's available balance in ``currency``, in minor units: succeeded charges
        less transfers and refunds."""
        with self._lock:
            return self._available(currency.lower())

    # -- Test controls ----------------------------------------------------------------------

    def complete_onboarding(self, account_id: str) -> JSONObject:
        """Act as the account holder finishing onboarding: details submitted, charges and
        payouts enabled, requested capabilities active; emits ``account.updated``. Returns the
        account. Raises ``KeyError`` for an unknown account."""
        with self._lock:
            if account_id not in self._accounts:
                raise KeyError(f"no such account: {account_id!r}")
            self._complete_onboarding(account_id)
            return copy.deepcopy(self._accounts[account_id])

    def fail_next(
        self,
        method: str,
        path_prefix: str,
        status: int = 500,
        count: int = 1,
        *,
        after_execution: bool = False,
    ) -> None:
        """Make the next ``count`` requests whose method is ``method`` and whose path starts
        with ``path_prefix`` fail with a Stripe-shaped ``api_error`` of HTTP ``status``.

        By default they fail before anything is done, and the failure is not saved under the
        idempotency key (a retry runs the request). With ``after_execution=True`` the request
        is carried out and its result saved, and only the answer is replaced: the case of a
        response lost on the way back, where a retry with the same key is replayed.
        """
        if not 400 <= status <= 599:
            raise ValueError(f"status must be an HTTP error status, not {status}")
        if count < 1:
            raise ValueError(f"count must be at least 1, not {count}")
        with self._lock:
            self._failures.append(
                _Failure(method.upper(), path_prefix, status, count, after_execution)
            )

    def sign(self, payload: bytes, timestamp: int | None = None, secret: str | None = None) -> str:
        """A ``Stripe-Signature`` header for ``payload``: ``t=<timestamp>,v1=<hex HMAC-SHA256
        of "<timestamp>.<payload>">`` keyed with ``secret`` (default: the webhook secret)."""
        moment = int(time.time()) if timestamp is None else timestamp
        key = (self.webhook_secret if secret is None else secret).encode()
        digest = hmac.new(key, f"{moment}.".encode() + payload, hashlib.sha256).hexdigest()
        return f"t={moment},v1={digest}"

    def deliver(self, event_id: str, url: str, *, timeout: float = 10.0) -> httpx.Response:
        """POST the event's JSON to a webhook ``url`` the way Stripe does, signed with the
        webhook secret; return the endpoint's response. Raises ``KeyError`` for an unknown
        event. The lock is not held while the endpoint runs, so it may call the fake."""
        import httpx  # only the webhook helpers need it

        with self._lock:
            if event_id not in self._events:
                raise KeyError(f"no such event: {event_id!r}")
            payload = json.dumps(self._events[event_id], indent=2).encode()
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Stripe-Signature": self.sign(payload),
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            "Cache-Control": "no-cache",
        }
        return httpx.post(url, content=payload, headers=headers, timeout=timeout, trust_env=False)

    # -- Request handling -------------------------------------------------------------------

    def _handle(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes | None
    ) -> _Reply:
        """Answer one HTTP request; ``headers`` have lower-case names, ``body`` is None when
        it was too large to accept."""
        request_id = _new_id("req_", 14)
        parts = urlsplit(target)
        path = parts.path
        api_version = headers.get("stripe-version") or DEFAULT_API_VERSION
        key = (headers.get("idempotency-key") or None) if method == "POST" else None
        with self._lock:
            if method == "GET" and path.startswith("/express/onboarding/"):
                return self._visit_account_link(path.removeprefix("/express/onboarding/"))
            params: JSONObject = {}
            try:
                self._authenticate(headers)
                params = self._read_params(method, parts.query, headers, body)
                if headers.get("stripe-account") or headers.get("stripe-context"):
                    raise _invalid(
                        "FakeStripe does not model requests made on behalf of a connected "
                        "account (Stripe-Account / Stripe-Context headers).",
                        saved=False,
                    )
                if key is not None and len(key) > MAX_IDEMPOTENCY_KEY:
                    raise _invalid(
                        f"Invalid idempotency key: keys can be up to {MAX_IDEMPOTENCY_KEY} "
                        f"characters long, but this one is {len(key)} characters."
                    )
            except _StripeError as error:
                self._requests.append((method, path, params, key))
                payload = error.payload(request_id)
                return self._answer(
                    error.status, payload, request_id, api_version, key, error.headers
                )
            self._requests.append((method, path, copy.deepcopy(params), key))
            failure = self._take_failure(method, path)
            if failure is not None and not failure.after_execution:
                return self._injected(failure, request_id, api_version, key)
            fingerprint = json.dumps(params, sort_keys=True)
            saved = self._saved.get((self.api_key, key)) if key is not None else None
            if saved is not None:
                reply = self._replay(
                    saved, method, path, fingerprint, key or "", request_id, api_version
                )
            else:
                call = _Call(params, request_id, key, api_version)
                status, payload, keep = self._execute(method, path, call)
                reply = self._answer(status, payload, request_id, api_version, key)
                if key is not None and keep:
                    self._saved[(self.api_key, key)] = _Saved(
                        method, path, fingerprint, status, reply.body, request_id
                    )
            if failure is not None:
                return self._injected(failure, request_id, api_version, key)
            return reply

    def _authenticate(self, headers: Mapping[str, str]) -> None:
        authorization = headers.get("authorization", "")
        scheme, _, credentials = authorization.partition(" ")
        presented: str | None = None
        if scheme.lower() == "bearer":
            presented = credentials.strip()
        elif scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(credentials.strip(), validate=True).decode()
            except ValueError:
                decoded = ""
            presented = decoded.partition(":")[0]
        challenge = {"WWW-Authenticate": 'Bearer realm="Stripe"'}
        if not presented:
            raise _StripeError(
                401,
                "invalid_request_error",
                "You did not provide an API key. You need to provide your API key in the "
                "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
                "YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for details, "
                "or we can help at https://support.stripe.com/.",
                saved=False,
                headers=challenge,
            )
        if not hmac.compare_digest(presented.encode(), self.api_key.encode()):
            raise _StripeError(
                401,
                "invalid_request_error",
                f"Invalid API Key provided: {_mask(presented)}",
                saved=False,
                headers=challenge,
            )

    def _read_params(
        self, method: str, query: str, headers: Mapping[str, str], body: bytes | None
    ) -> JSONObject:
        if body is None:
            raise _StripeError(
                413,
                "invalid_request_error",
                f"Request body too large: at most {MAX_BODY_BYTES} bytes are accepted.",
                saved=False,
            )
        if method != "POST" or not body:
            return parse_form(query)
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/x-www-form-urlencoded":
            raise _invalid(
                f"Invalid request: unsupported Content-Type {content_type or '(none)'}. If error "
                "persists and you need assistance, please contact support@stripe.com."
            )
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as error:
            raise _invalid("Invalid request: the body is not valid UTF-8.") from error
        return parse_form(f"{query}&{text}" if query else text)

    def _take_failure(self, method: str, path: str) -> _Failure | None:
        for failure in self._failures:
            if failure.method == method and path.startswith(failure.path_prefix):
                failure.remaining -= 1
                if failure.remaining == 0:
                    self._failures.remove(failure)
                return failure
        return None

    def _injected(
        self, failure: _Failure, request_id: str, api_version: str, key: str | None
    ) -> _Reply:
        error = _StripeError(
            failure.status,
            "api_error",
            "An unknown error occurred (injected by FakeStripe.fail_next).",
        )
        return self._answer(failure.status, error.payload(request_id), request_id, api_version, key)

    def _replay(
        self,
        saved: _Saved,
        method: str,
        path: str,
        fingerprint: str,
        key: str,
        request_id: str,
        api_version: str,
    ) -> _Reply:
        if (saved.method, saved.path) != (method, path):
            message = (
                "Keys for idempotent requests can only be used for the same endpoint they were "
                f"first used for ('{saved.path}' vs '{path}'). Try using a key other than "
                f"'{key}' if you meant to execute a different request."
            )
        elif saved.fingerprint != fingerprint:
            message = (
                "Keys for idempotent requests can only be used with the same parameters they "
                f"were first used with. Try using a key other than '{key}' if you meant to "
                "execute a different request."
            )
        else:
            headers = self._headers(request_id, api_version, key)
            headers.update({"Idempotent-Replayed": "true", "Original-Request": saved.request_id})
            return _Reply(saved.status, saved.body, headers)
        error = _StripeError(400, "idempotency_error", message)
        return self._answer(400, error.payload(request_id), request_id, api_version, key)

    def _execute(self, method: str, path: str, call: _Call) -> tuple[int, JSONObject, bool]:
        """Route and run one request: (status, body, whether idempotency saves it)."""
        for route_method, pattern, endpoint in self._routes:
            match = pattern.fullmatch(path)
            if route_method == method and match is not None:
                try:
                    return 200, endpoint(call, match.group(1) if pattern.groups else ""), True
                except _StripeError as error:
                    return error.status, error.payload(call.request_id), error.saved
                except Exception as crash:  # a bug in the fake: answer, and say so loudly
                    traceback.print_exc()
                    bug = _StripeError(500, "api_error", f"FakeStripe crashed: {crash!r}")
                    return 500, bug.payload(call.request_id), False
        unrecognized = _StripeError(
            404,
            "invalid_request_error",
            f"Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs "
            "or we can help at https://support.stripe.com/.",
            saved=False,
        )
        return 404, unrecognized.payload(call.request_id), False

    def _headers(self, request_id: str, api_version: str, key: str | None) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json",
            "Cache-Control": "no-cache, no-store",
            "Request-Id": request_id,
            "Stripe-Version": api_version,
        }
        if key is not None:
            headers["Idempotency-Key"] = key
        return headers

    def _answer(
        self,
        status: int,
        payload: JSONObject,
        request_id: str,
        api_version: str,
        key: str | None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> _Reply:
        headers = self._headers(request_id, api_version, key)
        headers.update(extra_headers or {})
        return _Reply(status, json.dumps(payload, indent=2).encode(), headers)

    # -- Shared bookkeeping -----------------------------------------------------------------

    def _now(self) -> int:
        return int(time.time())

    def _keep(self, store: dict[str, JSONObject], obj: JSONObject) -> JSONObject:
        store[obj["id"]] = obj
        self._order[obj["id"]] = next(self._sequence)
        return obj

    def _emit(
        self,
        event_type: str,
        obj: JSONObject,
        call: _Call | None,
        *,
        previous: JSONObject | None = None,
        account: str | None = None,
    ) -> None:
        data: JSONObject = {"object": copy.deepcopy(obj)}
        if previous is not None:
            data["previous_attributes"] = copy.deepcopy(previous)
        event: JSONObject = {"id": _new_id("evt_1", 23), "object": "event"}
        if account is not None:
            event["account"] = account
        event.update(
            {
                "api_version": call.api_version if call else DEFAULT_API_VERSION,
                "created": self._now(),
                "data": data,
                "livemode": False,
                "pending_webhooks": 0,
                "request": {
                    "id": call.request_id if call else None,
                    "idempotency_key": call.idempotency_key if call else None,
                },
                "type": event_type,
            }
        )
        self._keep(self._events, event)

    def _available(self, currency: str) -> int:
        charged = sum(
            charge["amount"]
            for charge in self._charges.values()
            if charge["status"] == "succeeded" and charge["currency"] == currency
        )
        transferred = sum(
            transfer["amount"] - transfer["amount_reversed"]
            for transfer in self._transfers.values()
            if transfer["currency"] == currency
        )
        refunded = sum(
            refund["amount"] for refund in self._refunds.values() if refund["currency"] == currency
        )
        available: int = charged - transferred - refunded
        return available

    def _page(
        self,
        url: str,
        store: dict[str, JSONObject],
        kind: str,
        items: list[JSONObject],
        params: JSONObject,
    ) -> JSONObject:
        """One page of ``items`` (oldest first) as a Stripe list, newest first."""
        created = params.get("created")
        if created is not None:
            tests = {"eq": operator.eq, "gt": operator.gt, "gte": operator.ge,
                     "lt": operator.lt, "lte": operator.le}  # fmt: skip
            items = [
                item
                for item in items
                if all(tests[name](item["created"], value) for name, value in created.items())
            ]
        newest_first = items[::-1]
        limit = params.get("limit", 10)
        after, before = params.get("starting_after"), params.get("ending_before")
        if after is not None and before is not None:
            raise _invalid(
                "You may only specify one of these parameters: ending_before, starting_after."
            )
        if after is not None:
            cursor = self._cursor(store, kind, after, "starting_after")
            older = [item for item in newest_first if self._order[item["id"]] < cursor]
            page, has_more = older[:limit], len(older) > limit
        elif before is not None:
            cursor = self._cursor(store, kind, before, "ending_before")
            newer = [item for item in newest_first if self._order[item["id"]] > cursor]
            page, has_more = newer[-limit:], len(newer) > limit
        else:
            page, has_more = newest_first[:limit], len(newest_first) > limit
        return {"object": "list", "data": page, "has_more": has_more, "url": url}

    def _cursor(self, store: dict[str, JSONObject], kind: str, object_id: str, param: str) -> int:
        if object_id not in store:
            raise _no_such(kind, object_id, param)
        return self._order[object_id]

    @staticmethod
    def _require(params: JSONObject, *names: str) -> None:
        for name in names:
            if name not in params:
                raise _missing(name)

    # -- Accounts ---------------------------------------------------------------------------

    def _create_account(self, call: _Call, _: str) -> JSONObject:
        params = _validate(call.params, _ACCOUNT_SPEC)
        self._require(params, "type")
        account_type = params["type"]
        country = params.get("country", "US")
        requested = sorted(
            name
            for name, wanted in params.get("capabilities", {}).items()
            if wanted.get("requested")
        )
        if account_type in ("express", "custom") and not requested:
            raise _invalid(
                f"You must request at least one capability (such as `transfers` or "
                f"`card_payments`) when creating an account of type {account_type}.",
                "capabilities",
            )
        account_id = _new_id("acct_1", 15)
        account = {
            "id": account_id,
            "object": "account",
            "business_profile": {
                "mcc": None,
                "name": None,
                "product_description": None,
                "support_email": None,
                "support_url": None,
                "url": None,
            },
            "business_type": params.get("business_type"),
            "capabilities": dict.fromkeys(requested, "inactive"),
            "charges_enabled": False,
            "controller": _controller(account_type),
            "country": country,
            "created": self._now(),
            "default_currency": params.get("default_currency", COUNTRY_CURRENCIES[country]),
            "details_submitted": False,
            "email": params.get("email"),
            "external_accounts": _empty_list(f"/v1/accounts/{account_id}/external_accounts"),
            "future_requirements": _requirements([]),
            "metadata": params.get("metadata", {}),
            "payouts_enabled": False,
            "requirements": _requirements(_ONBOARDING_DUE),
            "tos_acceptance": {"date": None, "ip": None, "user_agent": None},
            "type": account_type,
        }
        return self._keep(self._accounts, account)

    def _retrieve_account(self, _call: _Call, account_id: str) -> JSONObject:
        if account_id not in self._accounts:
            raise _no_such("account", account_id, "id", status=404)
        return self._accounts[account_id]

    def _complete_onboarding(self, account_id: str) -> None:
        account = self._accounts[account_id]
        if account["details_submitted"]:
            return
        fields = (
            "capabilities",
            "charges_enabled",
            "details_submitted",
            "payouts_enabled",
            "requirements",
        )
        previous = {name: copy.deepcopy(account[name]) for name in fields}
        capabilities = dict.fromkeys(account["capabilities"], "active")
        account.update(
            capabilities=capabilities or {"card_payments": "active", "transfers": "active"},
            charges_enabled=True,
            details_submitted=True,
            payouts_enabled=True,
            requirements=_requirements([]),
            tos_acceptance={"date": self._now(), "ip": "127.0.0.1", "user_agent": None},
        )
        self._emit("account.updated", account, None, previous=previous, account=account_id)

    def _create_account_link(self, call: _Call, _: str) -> JSONObject:
        params = _validate(call.params, _ACCOUNT_LINK_SPEC)
        self._require(params, "account", "type", "refresh_url", "return_url")
        account = self._accounts.get(params["account"])
        if account is None:
            raise _no_such("account", params["account"], "account")
        if params["type"] == "account_update" and account["type"] == "express":
            raise _invalid(
                "You cannot create `account_update` type Account Links for Express accounts.",
                "type",
                saved=True,
            )
        token = _new_id("", 32)
        created = self._now()
        self._account_links[token] = _AccountLink(
            account["id"],
            params["refresh_url"],
            params["return_url"],
            created + ACCOUNT_LINK_LIFETIME,
        )
        return {
            "object": "account_link",
            "created": created,
            "expires_at": created + ACCOUNT_LINK_LIFETIME,
            "url": f"{self._base_url}/express/onboarding/{token}",
        }

    def _visit_account_link(self, token: str) -> _Reply:
        """A browser opening an onboarding link: the first visit before expiry completes
        onboarding and redirects to ``return_url``; any other goes to ``refresh_url``."""
        link = self._account_links.get(token)
        if link is None:
            return _Reply(404, b"Not found", {"Content-Type": "text/plain"})
        if link.used or self._now() > link.expires_at:
            return _Reply(302, b"", {"Location": link.refresh_url})
        link.used = True
        self._complete_onboarding(link.account_id)
        return _Reply(302, b"", {"Location": link.return_url})

    # -- Payments ---------------------------------------------------------------------------

    def _create_payment_intent(self, call: _Call, _: str) -> JSONObject:
        params = _validate(call.params, _PAYMENT_INTENT_SPEC)
        self._require(params, "amount", "currency")
        amount, currency = params["amount"], params["currency"]
        minimum = MINIMUM_CHARGE.get(currency, 1)
        if amount < minimum:
            raise _invalid(
                f"Amount must be at least {_money(minimum, currency)} {currency}",
                "amount",
                "amount_too_small",
            )
        if amount > MAXIMUM_CHARGE:
            raise _invalid(
                f"Amount must be no more than {_money(MAXIMUM_CHARGE, currency)}",
                "amount",
                "amount_too_large",
            )
        automatic = params.get("automatic_payment_methods")
        types = params.get("payment_method_types")
        if automatic is not None and types is not None:
            raise _invalid(
                "You may only specify one of these parameters: automatic_payment_methods, "
                "payment_method_types."
            )
        if types is None and (automatic is None or automatic["enabled"]):
            automatic = {
                "allow_redirects": (automatic or {}).get("allow_redirects", "always"),
                "enabled": True,
            }
            types = ["card"]
        else:
            automatic, types = None, types or ["card"]
        confirm = params.get("confirm", False)
        if not confirm and "off_session" in params:
            raise _invalid("You can only pass `off_session` when `confirm=true`.", "off_session")
        token = params.get("payment_method")
        if confirm:
            self._check_confirmable(token, automatic, params.get("return_url"))
        intent_id = _new_id("pi_3", 23)
        method = self._resolve_payment_method(token, intent_id) if token else None
        intent = {
            "id": intent_id,
            "object": "payment_intent",
            "amount": amount,
            "amount_capturable": 0,
            "amount_received": 0,
            "automatic_payment_methods": automatic,
            "canceled_at": None,
            "cancellation_reason": None,
            "capture_method": "automatic_async",
            "client_secret": f"{intent_id}_secret_{_new_id('', 25)}",
            "confirmation_method": "automatic",
            "created": self._now(),
            "currency": currency,
            "customer": None,
            "description": params.get("description"),
            "last_payment_error": None,
            "latest_charge": None,
            "livemode": False,
            "metadata": params.get("metadata", {}),
            "next_action": None,
            "on_behalf_of": None,
            "payment_method": method["id"] if method else None,
            "payment_method_types": types,
            "receipt_email": None,
            "setup_future_usage": None,
            "statement_descriptor": None,
            "status": "requires_confirmation" if method else "requires_payment_method",
            "transfer_data": None,
            "transfer_group": params.get("transfer_group"),
        }
        self._keep(self._payment_intents, intent)
        self._emit("payment_intent.created", intent, call)
        if confirm and method is not None:
            self._attempt(
                intent, method, call, params.get("off_session", False), params.get("return_url")
            )
        return intent

    def _retrieve_payment_intent(self, _call: _Call, intent_id: str) -> JSONObject:
        if intent_id not in self._payment_intents:
            raise _no_such("payment_intent", intent_id, "intent", status=404)
        return self._payment_intents[intent_id]

    def _confirm_intent(self, call: _Call, intent_id: str) -> JSONObject:
        intent = self._retrieve_payment_intent(call, intent_id)
        params = _validate(call.params, _CONFIRM_SPEC)
        confirmable = ("requires_payment_method", "requires_confirmation", "requires_action")
        if intent["status"] not in confirmable:
            raise _StripeError(
                400,
                "invalid_request_error",
                f"You cannot confirm this PaymentIntent because it has a status of "
                f"{intent['status']}. Only a PaymentIntent with one of the following statuses "
                "may be confirmed: requires_confirmation, requires_action, "
                "requires_payment_method.",
                code="payment_intent_unexpected_state",
                extra={"payment_intent": copy.deepcopy(intent)},
            )
        token = params.get("payment_method") or intent["payment_method"]
        self._check_confirmable(
            token, intent["automatic_payment_methods"], params.get("return_url")
        )
        method = self._resolve_payment_method(token, intent_id)
        self._attempt(
            intent, method, call, params.get("off_session", False), params.get("return_url")
        )
        return intent

    def _retrieve_charge(self, _call: _Call, charge_id: str) -> JSONObject:
        if charge_id not in self._charges:
            raise _no_such("charge", charge_id, "id", status=404)
        return self._charges[charge_id]

    @staticmethod
    def _check_confirmable(
        token: str | None, automatic: JSONObject | None, return_url: str | None
    ) -> None:
        if token is None:
            raise _invalid(_NO_PAYMENT_METHOD, code="payment_intent_unexpected_state")
        redirects = automatic is not None and automatic["allow_redirects"] != "never"
        if redirects and return_url is None:
            raise _invalid(_RETURN_URL_NEEDED)

    def _resolve_payment_method(self, token: str, intent_id: str) -> JSONObject:
        """A ``pm_card_*`` test token becomes a fresh PaymentMethod; a ``pm_`` id must exist and
        not belong to another PaymentIntent (there are no customers to attach it to)."""
        if token.startswith("pm_card_"):
            card = _TEST_CARDS.get(token, _ANY_OTHER_TEST_CARD)
            method_id = _new_id("pm_1", 23)
            created: JSONObject = {
                "id": method_id,
                "object": "payment_method",
                "billing_details": {"address": None, "email": None, "name": None, "phone": None},
                "card": {
                    "brand": card.brand,
                    "country": "US",
                    "exp_month": 12,
                    "exp_year": time.gmtime().tm_year + 8,
                    "funding": "credit",
                    "last4": card.last4,
                },
                "created": self._now(),
                "customer": None,
                "livemode": False,
                "metadata": {},
                "type": "card",
            }
            self._payment_methods[method_id] = created
            self._cards[method_id] = card
            return created
        method = self._payment_methods.get(token)
        if method is None:
            raise _no_such("PaymentMethod", token, "payment_method")
        if self._payment_method_users.get(token, intent_id) != intent_id:
            raise _invalid(
                "The provided PaymentMethod was previously used with a PaymentIntent without "
                "Customer attachment, shared with a connected account without Customer "
                "attachment, or was detached from a Customer. It may not be used again. To use a "
                "PaymentMethod multiple times, you must attach it to a Customer first.",
                "payment_method",
                saved=True,
            )
        return method

    def _attempt(
        self,
        intent: JSONObject,
        method: JSONObject,
        call: _Call,
        off_session: bool,
        return_url: str | None,
    ) -> None:
        """Confirm ``intent`` with ``method``: succeed, ask for action, or decline (raising the
        402 after the failed charge and events are recorded)."""
        self._payment_method_users[method["id"]] = intent["id"]
        intent["payment_method"] = method["id"]
        card = self._cards[method["id"]]
        if card.outcome == "authenticate" and off_session:
            card = _AUTHENTICATION_REQUIRED
        if card.outcome == "authenticate":
            redirect = f"{self._base_url}/3d_secure_2/{intent['id']}"
            intent.update(
                status="requires_action",
                next_action=(
                    {
                        "redirect_to_url": {"return_url": return_url, "url": redirect},
                        "type": "redirect_to_url",
                    }
                    if return_url
                    else {
                        "type": "use_stripe_sdk",
                        "use_stripe_sdk": {
                            "type": "three_d_secure_redirect",
                            "stripe_js": redirect,
                        },
                    }
                ),
            )
            self._emit("payment_intent.requires_action", intent, call)
            return
        charge = self._new_charge(intent, method, card)
        intent["latest_charge"] = charge["id"]
        if card.outcome == "succeed":
            intent.update(
                status="succeeded",
                amount_received=intent["amount"],
                next_action=None,
                last_payment_error=None,
            )
            self._emit("charge.succeeded", charge, call)
            self._emit("payment_intent.succeeded", intent, call)
            return
        assert card.code is not None
        assert card.message is not None
        error = _StripeError(
            402,
            "card_error",
            card.message,
            code=card.code,
            extra={"charge": charge["id"], "decline_code": card.decline_code},
        )
        last_error = error.payload(call.request_id)["error"]
        last_error.pop("request_log_url")
        last_error["payment_method"] = copy.deepcopy(method)
        intent.update(
            status="requires_payment_method",
            payment_method=None,
            next_action=None,
            last_payment_error=last_error,
        )
        self._emit("charge.failed", charge, call)
        self._emit("payment_intent.payment_failed", intent, call)
        error.extra.update(
            payment_intent=copy.deepcopy(intent), payment_method=copy.deepcopy(method)
        )
        raise error

    def _new_charge(self, intent: JSONObject, method: JSONObject, card: _TestCard) -> JSONObject:
        succeeded = card.outcome == "succeed"
        outcome = (
            {
                "network_status": "approved_by_network",
                "reason": None,
                "risk_level": "normal",
                "seller_message": "Payment complete.",
                "type": "authorized",
            }
            if succeeded
            else {
                "network_status": "declined_by_network",
                "reason": card.decline_code,
                "risk_level": "normal",
                "type": "issuer_declined",
                "seller_message": "The bank did not return any further details with this decline.",
            }
        )
        charge = {
            "id": _new_id("ch_3", 23),
            "object": "charge",
            "amount": intent["amount"],
            "amount_captured": intent["amount"] if succeeded else 0,
            "amount_refunded": 0,
            "balance_transaction": _new_id("txn_3", 23) if succeeded else None,
            "captured": succeeded,
            "created": self._now(),
            "currency": intent["currency"],
            "description": intent["description"],
            "failure_code": None if succeeded else card.code,
            "failure_message": None if succeeded else card.message,
            "livemode": False,
            "metadata": copy.deepcopy(intent["metadata"]),
            "outcome": outcome,
            "paid": succeeded,
            "payment_intent": intent["id"],
            "payment_method": method["id"],
            "payment_method_details": {"card": copy.deepcopy(method["card"]), "type": "card"},
            "refunded": False,
            "status": "succeeded" if succeeded else "failed",
            "transfer_group": intent["transfer_group"],
        }
        return self._keep(self._charges, charge)

    def _retrieve_balance(self, _call: _Call, _: str) -> JSONObject:
        currencies = sorted({"usd"} | {charge["currency"] for charge in self._charges.values()})
        return {
            "object": "balance",
            "available": [
                {
                    "amount": self._available(c),
                    "currency": c,
                    "source_types": {"card": self._available(c)},
                }
                for c in currencies
            ],
            "livemode": False,
            "pending": [
                {"amount": 0, "currency": c, "source_types": {"card": 0}} for c in currencies
            ],
        }

    # -- Transfers --------------------------------------------------------------------------

    def _create_transfer(self, call: _Call, _: str) -> JSONObject:
        params = _validate(call.params, _TRANSFER_SPEC)
        self._require(params, "amount", "currency", "destination")
        amount, currency = params["amount"], params["currency"]
        destination = self._accounts.get(params["destination"])
        if destination is None:
            raise _no_such("destination", params["destination"], "destination")
        if destination["capabilities"].get("transfers") != "active":
            raise _StripeError(
                400,
                "invalid_request_error",
                "Your destination account needs to have at least one of the following "
                "capabilities enabled: transfers, crypto_transfers, legacy_payments",
                code="insufficient_capabilities_for_transfer",
                param="destination",
            )
        source = params.get("source_transaction")
        if source is not None:
            self._check_source_transaction(source, amount, currency)
        elif self._available(currency) < amount:
            raise _StripeError(
                400,
                "invalid_request_error",
                "You have insufficient available funds in your Stripe account. Try adding funds "
                "directly to your available balance by creating Charges using the "
                "4000000000000077 test card. See: https://stripe.com/docs/testing#available-balance",
                code="balance_insufficient",
            )
        transfer_id = _new_id("tr_1", 23)
        transfer = {
            "id": transfer_id,
            "object": "transfer",
            "amount": amount,
            "amount_reversed": 0,
            "balance_transaction": _new_id("txn_1", 23),
            "created": self._now(),
            "currency": currency,
            "description": params.get("description"),
            "destination": destination["id"],
            "destination_payment": _new_id("py_1", 23),
            "livemode": False,
            "metadata": params.get("metadata", {}),
            "reversals": _empty_list(f"/v1/transfers/{transfer_id}/reversals"),
            "reversed": False,
            "source_transaction": source,
            "source_type": "card",
            "transfer_group": params.get("transfer_group"),
        }
        self._keep(self._transfers, transfer)
        self._emit("transfer.created", transfer, call)
        return transfer

    def _check_source_transaction(self, charge_id: str, amount: int, currency: str) -> None:
        charge = self._charges.get(charge_id)
        if charge is None or charge["status"] != "succeeded":
            raise _no_such("charge", charge_id, "source_transaction")
        if charge["currency"] != currency:
            raise _invalid(
                f"The currency of source_transaction's balance transaction ({charge['currency']}) "
                f"must be the same as the transfer currency ({currency}).",
                "currency",
                saved=True,
            )
        spent = sum(
            transfer["amount"]
            for transfer in self._transfers.values()
            if transfer["source_transaction"] == charge_id
        )
        left = charge["amount"] - charge["amount_refunded"] - spent
        if amount > left:
            raise _invalid(
                f"The transfer amount ({_money(amount, currency)}) is greater than what is left "
                f"of source_transaction {charge_id} ({_money(left, currency)}).",
                "amount",
                saved=True,
            )

    def _list_transfers(self, call: _Call, _: str) -> JSONObject:
        params = _validate(call.params, _TRANSFER_LIST_SPEC)
        items = [
            transfer
            for transfer in self._transfers.values()
            if params.get("destination") in (None, transfer["destination"])
            and params.get("transfer_group") in (None, transfer["transfer_group"])
        ]
        return self._page("/v1/transfers", self._transfers, "transfer", items, params)

    def _retrieve_transfer(self, _call: _Call, transfer_id: str) -> JSONObject:
        if transfer_id not in self._transfers:
            raise _no_such("transfer", transfer_id, "id", status=404)
        return self._transfers[transfer_id]

    # -- Refunds ----------------------------------------------------------------------------

    def _create_refund(self, call: _Call, _: str) -> JSONObject:
        params = _validate(call.params, _REFUND_SPEC)
        intent_id, charge_id = params.get("payment_intent"), params.get("charge")
        if intent_id is None and charge_id is None:
            raise _invalid(
                "One of the following params should be provided for this request: "
                "payment_intent or charge."
            )
        charge = self._refundable_charge(intent_id, charge_id)
        currency = charge["currency"]
        left = charge["amount"] - charge["amount_refunded"]
        if left == 0:
            raise _invalid(
                f"Charge {charge['id']} has already been refunded.",
                code="charge_already_refunded",
                saved=True,
            )
        amount = params.get("amount", left)
        if amount > left:
            raise _invalid(
                f"Refund amount ({_money(amount, currency)}) is greater than unrefunded amount "
                f"on charge ({_money(left, currency)})",
                "amount",
                saved=True,
            )
        refund = {
            "id": _new_id("re_3", 23),
            "object": "refund",
            "amount": amount,
            "balance_transaction": _new_id("txn_3", 23),
            "charge": charge["id"],
            "created": self._now(),
            "currency": currency,
            "metadata": params.get("metadata", {}),
            "payment_intent": charge["payment_intent"],
            "reason": params.get("reason"),
            "receipt_number": None,
            "source_transfer_reversal": None,
            "status": "succeeded",
            "transfer_reversal": None,
        }
        self._keep(self._refunds, refund)
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] == charge["amount"]
        self._emit("refund.created", refund, call)
        self._emit("charge.refunded", charge, call)
        return refund

    def _refundable_charge(self, intent_id: str | None, charge_id: str | None) -> JSONObject:
        if intent_id is not None:
            intent = self._payment_intents.get(intent_id)
            if intent is None:
                raise _no_such("payment_intent", intent_id, "payment_intent")
            if intent["status"] != "succeeded":
                raise _invalid(
                    f"This PaymentIntent ({intent_id}) does not have a successful charge to "
                    "refund.",
                    "payment_intent",
                    saved=True,
                )
            if charge_id not in (None, intent["latest_charge"]):
                raise _invalid(
                    f"The charge {charge_id} does not belong to PaymentIntent {intent_id}.",
                    "charge",
                    saved=True,
                )
            return self._charges[intent["latest_charge"]]
        assert charge_id is not None
        charge = self._charges.get(charge_id)
        if charge is None:
            raise _no_such("charge", charge_id, "charge")
        if charge["status"] != "succeeded":
            raise _invalid(
                f"Charge {charge_id} has not succeeded, so it cannot be refunded.",
                "charge",
                saved=True,
            )
        return charge

    def _list_refunds(self, call: _Call, _: str) -> JSONObject:
        params = _validate(call.params, _REFUND_LIST_SPEC)
        items = [
            refund
            for refund in self._refunds.values()
            if params.get("payment_intent") in (None, refund["payment_intent"])
            and params.get("charge") in (None, refund["charge"])
        ]
        return self._page("/v1/refunds", self._refunds, "refund", items, params)

    def _retrieve_refund(self, _call: _Call, refund_id: str) -> JSONObject:
        if refund_id not in self._refunds:
            raise _no_such("refund", refund_id, "id", status=404)
        return self._refunds[refund_id]

    # -- Events -----------------------------------------------------------------------------

    def _list_events(self, call: _Call, _: str) -> JSONObject:
        params = _validate(call.params, _EVENT_LIST_SPEC)
        if "type" in params and "types" in params:
            raise _invalid("You may only specify one of these parameters: type, types.")
        patterns = params.get("types") or [params.get("type", "*")]
        matchers = [re.compile(re.escape(p).replace(r"\*", ".*")) for p in patterns]
        items = [
            event
            for event in self._events.values()
            if any(matcher.fullmatch(event["type"]) for matcher in matchers)
        ]
        return self._page("/v1/events", self._events, "event", items, params)

    def _retrieve_event(self, _call: _Call, event_id: str) -> JSONObject:
        if event_id not in self._events:
            raise _no_such("event", event_id, "id", status=404)
        return self._events[event_id]


# --- HTTP plumbing --------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fake: FakeStripe) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fake = fake


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30
    disable_nagle_algorithm = True  # headers and body go out as two writes; do not wait 40 ms
    server: _Server

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def _serve(self, method: str) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        body: bytes | None = b""
        if length < 0:
            self.close_connection = True  # the body's end is unknown
        elif length > MAX_BODY_BYTES:
            body = None
            self._discard(length)
        else:
            body = self.rfile.read(length)
        headers = {name.lower(): value for name, value in self.headers.items()}
        reply = self.server.fake._handle(method, self.path, headers, body)
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(reply.body)

    def _discard(self, length: int) -> None:
        """Read and drop an oversized body, so that the client reads the 413 rather than a
        reset; past 16 MiB, stop reading and close the connection instead."""
        if length > 16 * MAX_BODY_BYTES:
            self.close_connection = True
            return
        while length > 0:
            chunk = self.rfile.read(min(length, 64 * 1024))
            if not chunk:
                break
            length -= len(chunk)

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: tests read ``FakeStripe.requests`` instead."""
