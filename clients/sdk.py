"""A small, typed Python client for the coordinator's HTTP API (v1), for scripts and the CLI.

One method per endpoint. Each returns the coordinator's decoded JSON answer (the public log's
checkpoint and tiles come back as bytes) and raises :class:`ApiError` carrying the
coordinator's own one-line message when the answer is an error, or :class:`TransportError`
when the coordinator cannot be reached. :func:`spec_from_options` builds the JobSpec that
quotes and jobs take from the options a person types.

This module must never put the API key anywhere but the ``Authorization`` header of requests
to endpoints that need it: not in ``repr``, not in error messages, not on the public
endpoints. It never follows redirects, never reads more than 16 MiB of an answer, and holds
no domain logic: what a request means is the coordinator's to decide.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from decimal import Decimal, InvalidOperation
from types import TracebackType
from typing import Any, Final
from urllib.parse import quote

import httpx

__all__ = [
    "MAX_RESPONSE_BYTES",
    "ApiError",
    "TallyClient",
    "TransportError",
    "spec_from_options",
]

#: The largest answer the client reads; anything longer is refused with :class:`ApiError`.
MAX_RESPONSE_BYTES: Final = 16 * 1024 * 1024
#: How much of a non-JSON error body becomes the error's detail.
_TEXT_DETAIL_CHARS: Final = 200
#: The longest detail kept from a JSON error (a coordinator's messages are one short line).
_JSON_DETAIL_CHARS: Final = 1000
#: How many FastAPI validation errors are spelled out in a 422's detail.
_VALIDATION_ERRORS_SHOWN: Final = 3
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
_API_KEY_CHARS = re.compile(r"^[\x21-\x7e]+$")
#: C2SP tlog-tiles paths under /log/: hash tiles ``tile/L/N…[.p/W]`` and entry bundles.
_TILE_PATH = re.compile(r"^tile/(?:entries|[0-9]{1,2})/(?:x[0-9]{3}/)*[0-9]{3}(?:\.p/[0-9]{1,3})?$")
_CATALOG_FILTERS: Final = frozenset(
    {
        "q",
        "proofs",
        "modality",
        "license",
        "currency",
        "use",
        "creator",
        "max_price",
        "min_rows",
        "max_rows",
        "min_bytes",
        "max_bytes",
        "min_lifetime_epsilon",
        "min_epsilon_per_job",
        "max_delta",
        "include_revoked",
        "limit",
        "offset",
    }
)
_CONNECT_HINT: Final = "is `tally coordinator up` running?"
_DEFAULT_DELTA: Final = "1e-5"
_USER_AGENT: Final = "tallystick-sdk/1"


class ApiError(Exception):
    """The coordinator answered with an error, or with something the client cannot accept.

    ``status`` is the HTTP status (0 when there was no answer at all: see
    :class:`TransportError`), ``detail`` the coordinator's one-line message, and ``field``
    the request field at fault when the coordinator named one. ``idempotency_key`` is the
    ``Idempotency-Key`` the failed request carried, if any: retrying with the same key is
    safe, because the coordinator answers a repeated key with the stored response.
    """

    def __init__(
        self,
        status: int,
        detail: str,
        field: str | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> None:
        self.status = status
        self.detail = detail
        self.field = field
        self.idempotency_key = idempotency_key
        super().__init__(status, detail, field)

    def __str__(self) -> str:
        text = f"HTTP {self.status}: {self.detail}"
        if self.field:
            text += f" (field: {self.field})"
        return text


class TransportError(ApiError):
    """The coordinator could not be reached, or the connection failed before an answer."""

    def __init__(self, detail: str, *, idempotency_key: str | None = None) -> None:
        super().__init__(0, detail, idempotency_key=idempotency_key)

    def __str__(self) -> str:
        return self.detail


_NO_BODY: Final[Any] = object()


class TallyClient:
    """A connection to one coordinator, optionally authenticated with one API key.

    Example::

        with TallyClient("http://127.0.0.1:8000", api_key) as client:
            quote = client.quote(spec_from_options(datasets=["ds_ab12…:1.0"], model="mlp",
                                 rounds=3, local_epochs=1, batch_size=32, learning_rate="0.05"))

    ``transport`` replaces the network (tests pass an ``httpx.MockTransport``).
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """Check ``base_url`` (http or https, no query, no credentials) and ``timeout``.

        Raises ValueError naming what is wrong; the API key is never echoed.
        """
        self._base_url = _check_base_url(base_url)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float):
            raise ValueError(f"timeout must be a number of seconds (got {type(timeout).__name__})")
        if not math.isfinite(timeout) or timeout <= 0:
            raise ValueError(f"timeout must be a positive number of seconds (got {timeout})")
        self._timeout = float(timeout)
        self._api_key = _check_api_key(api_key)
        # The whole key, then its secret part alone, in case a server echoes either.
        self._secrets: tuple[str, ...] = ()
        if self._api_key is not None:
            secret = self._api_key.split("_", 2)[-1]
            self._secrets = (self._api_key, secret) if len(secret) >= 16 else (self._api_key,)
        self._http = httpx.Client(
            transport=transport,
            timeout=self._timeout,
            follow_redirects=False,
            headers={"User-Agent": _USER_AGENT},
        )

    @property
    def base_url(self) -> str:
        """The coordinator's address, without a trailing slash."""
        return self._base_url

    def __repr__(self) -> str:
        auth = "with an API key" if self._api_key else "without an API key"
        return f"<TallyClient {self._base_url} {auth}>"

    def close(self) -> None:
        """Close the connections this client holds."""
        self._http.close()

    def __enter__(self) -> TallyClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- public ---------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """``GET /healthz``: ``{"status": "ok", "development_mode": bool}`` (no key needed)."""
        return self._json("GET", "/healthz", public=True)

    def info(self) -> dict[str, Any]:
        """``GET /v1/info``: the coordinator's DID, keys, log origin and witnesses."""
        return self._json("GET", "/v1/info", public=True)

    def models(self) -> dict[str, Any]:
        """``GET /v1/models``: the vetted model architectures and aggregation strategies."""
        return self._json("GET", "/v1/models")

    # -- accounts -------------------------------------------------------------------------

    def create_account(
        self, name: str, role: str, *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """``POST /v1/accounts`` (admin): a new account and its first API key."""
        return self._json(
            "POST",
            "/v1/accounts",
            body={"name": name, "role": role},
            idempotency_key=_idempotency(idempotency_key),
        )

    def list_accounts(self, *, limit: int = 50, offset: int = 0) -> dict[str, Any]:
        """``GET /v1/accounts`` (admin, auditor): ``{"items": [Account]}``."""
        return self._json("GET", "/v1/accounts", query={"limit": limit, "offset": offset})

    def whoami(self) -> dict[str, Any]:
        """``GET /v1/accounts/me``: the key's account and its linked identities."""
        return self._json("GET", "/v1/accounts/me")

    def get_account(self, account_id: str) -> dict[str, Any]:
        """``GET /v1/accounts/{account_id}`` (self, admin, auditor): one Account."""
        return self._json("GET", f"/v1/accounts/{_segment('account_id', account_id)}")

    def create_key(
        self, account_id: str, label: str = "", *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """``POST /v1/accounts/{account_id}/keys`` (self, admin): a new API key, shown once."""
        return self._json(
            "POST",
            f"/v1/accounts/{_segment('account_id', account_id)}/keys",
            body={"label": label},
            idempotency_key=_idempotency(idempotency_key),
        )

    def list_keys(self, account_id: str) -> dict[str, Any]:
        """``GET /v1/accounts/{account_id}/keys``: the account's keys (never their secrets)."""
        return self._json("GET", f"/v1/accounts/{_segment('account_id', account_id)}/keys")

    def revoke_key(self, account_id: str, key_id: str) -> dict[str, Any]:
        """``POST /v1/accounts/{account_id}/keys/{key_id}/revoke`` (self, admin)."""
        account = _segment("account_id", account_id)
        return self._json(
            "POST", f"/v1/accounts/{account}/keys/{_segment('key_id', key_id)}/revoke"
        )

    def earnings(self, account_id: str | None = None) -> dict[str, Any]:
        """``GET /v1/earnings`` (creator: its own; admin, auditor: ``account_id``'s): each
        dataset's quoted share of the jobs funded on it, with totals per state."""
        return self._json("GET", "/v1/earnings", query={"account_id": account_id})

    # -- creators: identity and hosts -----------------------------------------------------

    def link_identity(
        self, proof: dict[str, Any], *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """``POST /v1/identities`` (creator): link a creator DID by its signed proof envelope."""
        return self._json(
            "POST",
            "/v1/identities",
            body={"proof": proof},
            idempotency_key=_idempotency(idempotency_key),
        )

    def register_host(
        self, host_did: str, evidence: dict[str, Any], *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """``POST /v1/hosts`` (creator): register a data host with its worker's evidence."""
        return self._json(
            "POST",
            "/v1/hosts",
            body={"host_did": host_did, "evidence": evidence},
            idempotency_key=_idempotency(idempotency_key),
        )

    def get_host(self, host_did: str) -> dict[str, Any]:
        """``GET /v1/hosts/{host_did}`` (owner, admin, auditor): one Host."""
        return self._json("GET", f"/v1/hosts/{_segment('host_did', host_did)}")

    # -- catalog --------------------------------------------------------------------------

    def publish_manifest(
        self, envelope: dict[str, Any], *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """``POST /v1/catalog`` (creator): list a signed dataset manifest; returns the Listing."""
        return self._json(
            "POST",
            "/v1/catalog",
            body={"envelope": envelope},
            idempotency_key=_idempotency(idempotency_key),
        )

    def search_catalog(self, **filters: str | int | float | bool | None) -> dict[str, Any]:
        """``GET /v1/catalog``: listings matching ``filters`` (``q``, ``modality``, …).

        ``None`` values are left out; booleans are sent as ``true``/``false``. An unknown
        filter name raises ValueError rather than being silently ignored by the server.
        """
        unknown = sorted(set(filters) - _CATALOG_FILTERS)
        if unknown:
            raise ValueError(
                f"unknown catalog filter {unknown[0]!r}; "
                f"known filters: {', '.join(sorted(_CATALOG_FILTERS))}"
            )
        return self._json("GET", "/v1/catalog", query=filters)

    def get_listing(self, dataset_id: str, *, version: int | None = None) -> dict[str, Any]:
        """``GET /v1/catalog/{dataset_id}``: the listing, its manifest and its log proof."""
        return self._json(
            "GET",
            f"/v1/catalog/{_segment('dataset_id', dataset_id)}",
            query={"version": version},
        )

    def revoke_listing(self, dataset_id: str, reason: str) -> dict[str, Any]:
        """``POST /v1/catalog/{dataset_id}/revoke`` (owning creator): the revoked Listing."""
        return self._json(
            "POST",
            f"/v1/catalog/{_segment('dataset_id', dataset_id)}/revoke",
            body={"reason": reason},
        )

    # -- jobs -----------------------------------------------------------------------------

    def quote(self, spec: dict[str, Any]) -> dict[str, Any]:
        """``POST /v1/quotes`` (buyer): ``{"quote": Quote}`` for a JobSpec; creates nothing."""
        return self._json("POST", "/v1/quotes", body=spec)

    def create_job(
        self,
        spec: dict[str, Any],
        budget_amount: str,
        currency: str,
        *,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """``POST /v1/jobs`` (buyer): a draft Job for ``spec`` with a budget of
        ``budget_amount`` (an exact decimal string such as ``"25.00"``) in ``currency``."""
        if "budget" in spec:
            raise ValueError("spec already has a budget; give it as budget_amount and currency")
        if not isinstance(budget_amount, str):
            raise ValueError(
                f"budget_amount must be a decimal string such as '25.00' "
                f"(got {type(budget_amount).__name__})"
            )
        body = {**spec, "budget": {"amount": budget_amount, "currency": currency}}
        return self._json(
            "POST", "/v1/jobs", body=body, idempotency_key=_idempotency(idempotency_key)
        )

    def list_jobs(
        self, *, status: str | None = None, limit: int = 50, offset: int = 0
    ) -> dict[str, Any]:
        """``GET /v1/jobs``: a buyer's own jobs (admin and auditor: all), newest first."""
        return self._json(
            "GET", "/v1/jobs", query={"status": status, "limit": limit, "offset": offset}
        )

    def get_job(self, job_id: str) -> dict[str, Any]:
        """``GET /v1/jobs/{job_id}`` (owner, admin, auditor): one Job with its events."""
        return self._json("GET", f"/v1/jobs/{_segment('job_id', job_id)}")

    def fund_job(self, job_id: str, *, payment_method: str | None = None) -> dict[str, Any]:
        """``POST /v1/jobs/{job_id}/fund`` (owner): pay the quote through the rail and place
        the hold; draft → funded. ``payment`` in the answer says how the payment stands."""
        body: Any = _NO_BODY if payment_method is None else {"payment_method": payment_method}
        return self._json("POST", f"/v1/jobs/{_segment('job_id', job_id)}/fund", body=body)

    def job_payments(self, job_id: str) -> dict[str, Any]:
        """``GET /v1/jobs/{job_id}/payments``: the job's rail operations (funding, payouts,
        refunds) with the rail's ids."""
        return self._json("GET", f"/v1/jobs/{_segment('job_id', job_id)}/payments")

    def payouts(self) -> dict[str, Any]:
        """``POST /v1/billing/payouts`` (admins): pay everything owed; the signed statement."""
        return self._json("POST", "/v1/billing/payouts")

    def reconcile(self) -> dict[str, Any]:
        """``POST /v1/billing/reconcile`` (admins): settle rail operations left pending."""
        return self._json("POST", "/v1/billing/reconcile")

    def onboard(self, email: str | None = None) -> dict[str, Any]:
        """``POST /v1/billing/onboarding`` (creators): your rail account and onboarding link."""
        body: Any = _NO_BODY if email is None else {"email": email}
        return self._json("POST", "/v1/billing/onboarding", body=body)

    def creator_statement(self, account_id: str) -> dict[str, Any]:
        """``GET /v1/billing/creators/{account_id}/statement``: a creator's royalties,
        disputes and payouts across jobs."""
        return self._json(
            "GET", f"/v1/billing/creators/{_segment('account_id', account_id)}/statement"
        )

    def cancel_job(self, job_id: str, reason: str | None = None) -> dict[str, Any]:
        """``POST /v1/jobs/{job_id}/cancel`` (owner, admin): the cancelled Job."""
        body: Any = _NO_BODY if reason is None else {"reason": reason}
        return self._json("POST", f"/v1/jobs/{_segment('job_id', job_id)}/cancel", body=body)

    def start_job(
        self,
        job_id: str,
        *,
        node_wait_seconds: float | None = None,
        round_timeout_seconds: float | None = None,
    ) -> dict[str, Any]:
        """``POST /v1/jobs/{job_id}/start`` (owner, admin): funded → running; the run is
        submitted to the SuperLink. Returns the run (see ``job_rounds``)."""
        body: dict[str, float] = {}
        if node_wait_seconds is not None:
            body["node_wait_seconds"] = node_wait_seconds
        if round_timeout_seconds is not None:
            body["round_timeout_seconds"] = round_timeout_seconds
        return self._json("POST", f"/v1/jobs/{_segment('job_id', job_id)}/start", body=body)

    def job_rounds(self, job_id: str) -> dict[str, Any]:
        """``GET /v1/jobs/{job_id}/rounds``: the run's state and every recorded round."""
        return self._json("GET", f"/v1/jobs/{_segment('job_id', job_id)}/rounds")

    def job_model(self, job_id: str) -> dict[str, Any]:
        """``GET /v1/jobs/{job_id}/model`` (owner, admin, auditor): the trained model
        (``npz_base64``) and its model card."""
        return self._json("GET", f"/v1/jobs/{_segment('job_id', job_id)}/model")

    def job_statement(self, job_id: str) -> dict[str, Any]:
        """``GET /v1/jobs/{job_id}/statement``: every transfer of the job (hold, royalties,
        fees, release) with totals; a creator sees the lines that pay it."""
        return self._json("GET", f"/v1/jobs/{_segment('job_id', job_id)}/statement")

    def open_dispute(
        self, job_id: str, reason: str, *, round_number: int | None = None
    ) -> dict[str, Any]:
        """``POST /v1/jobs/{job_id}/disputes``: freeze what the job (or one round) paid."""
        body: dict[str, Any] = {"reason": reason}
        if round_number is not None:
            body["round"] = round_number
        return self._json("POST", f"/v1/jobs/{_segment('job_id', job_id)}/disputes", body=body)

    def dispute(self, dispute_id: str) -> dict[str, Any]:
        """``GET /v1/disputes/{dispute_id}``."""
        return self._json("GET", f"/v1/disputes/{_segment('dispute_id', dispute_id)}")

    def resolve_dispute(self, dispute_id: str, outcome: str, note: str) -> dict[str, Any]:
        """``POST /v1/disputes/{dispute_id}/resolve`` (admins): ``release`` or ``refund``."""
        return self._json(
            "POST",
            f"/v1/disputes/{_segment('dispute_id', dispute_id)}/resolve",
            body={"outcome": outcome, "note": note},
        )

    def balances(self) -> dict[str, Any]:
        """``GET /v1/billing/balances``: the caller's ledger accounts (admins and auditors:
        every account and the trial balance)."""
        return self._json("GET", "/v1/billing/balances")

    def issue_token(
        self, job_id: str, dataset_id: str, *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """``POST /v1/jobs/{job_id}/tokens`` (the dataset's creator, admin): a capability
        token for the dataset's host to train in this job."""
        return self._json(
            "POST",
            f"/v1/jobs/{_segment('job_id', job_id)}/tokens",
            body={"dataset_id": dataset_id},
            idempotency_key=_idempotency(idempotency_key),
        )

    # -- log ------------------------------------------------------------------------------

    def log_checkpoint(self) -> bytes:
        """``GET /log/checkpoint``: the signed checkpoint note, exactly as served."""
        return self._bytes("/log/checkpoint")

    def log_tile(self, path: str) -> bytes:
        """``GET /log/{path}``: a C2SP hash tile (``tile/0/000``) or entry bundle
        (``tile/entries/000.p/5``), exactly as served."""
        if not isinstance(path, str) or not _TILE_PATH.fullmatch(path):
            raise ValueError(
                f"tile path {path!r} is not a C2SP tile path such as 'tile/0/x001/234', "
                "'tile/entries/000' or 'tile/0/000.p/5'"
            )
        return self._bytes(f"/log/{path}")

    def log_entry(self, index: int) -> dict[str, Any]:
        """``GET /v1/log/entries/{index}``: one log entry, its envelope and its proof."""
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise ValueError(f"log index must be a non-negative integer (got {index!r})")
        return self._json("GET", f"/v1/log/entries/{index}")

    def witnesses(self) -> dict[str, Any]:
        """``GET /v1/log/witnesses``: each witness and how far it has cosigned the log."""
        return self._json("GET", "/v1/log/witnesses")

    # -- plumbing -------------------------------------------------------------------------

    def _json(
        self,
        method: str,
        path: str,
        *,
        public: bool = False,
        query: dict[str, str | int | float | bool | None] | None = None,
        body: Any = _NO_BODY,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        status, data = self._send(
            method,
            path,
            public=public,
            query=query,
            body=body,
            idempotency_key=idempotency_key,
            accept="application/json",
        )
        try:
            value = json.loads(data)
        except (ValueError, RecursionError):
            raise ApiError(
                status,
                f"the answer to {method} {path} is not JSON: "
                f"{self._clean(data.decode('utf-8', 'replace'), _TEXT_DETAIL_CHARS)}",
            ) from None
        if not isinstance(value, dict):
            raise ApiError(
                status,
                f"the answer to {method} {path} is JSON {type(value).__name__}, not an object",
            )
        return value

    def _bytes(self, path: str) -> bytes:
        return self._send("GET", path, public=True, accept="*/*")[1]

    def _send(
        self,
        method: str,
        path: str,
        *,
        public: bool,
        accept: str,
        query: dict[str, str | int | float | bool | None] | None = None,
        body: Any = _NO_BODY,
        idempotency_key: str | None = None,
    ) -> tuple[int, bytes]:
        """Send one request and read its answer (at most MAX_RESPONSE_BYTES).

        Returns the status and body of a 2xx answer; raises ApiError for any other.
        """
        headers = {"Accept": accept}
        if self._api_key is not None and not public:
            headers["Authorization"] = f"Bearer {self._api_key}"
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        content: bytes | None = None
        if body is not _NO_BODY:
            content = _encode_body(body)
            headers["Content-Type"] = "application/json"
        url = self._base_url + path
        try:
            with self._http.stream(
                method, url, params=_query(query), content=content, headers=headers
            ) as response:
                status = response.status_code
                data = _read_bounded(response)
                if data is None:
                    raise ApiError(
                        status,
                        f"the answer to {method} {path} is larger than "
                        f"{MAX_RESPONSE_BYTES // (1024 * 1024)} MiB; refused",
                        idempotency_key=idempotency_key,
                    )
                location = response.headers.get("location", "")
                reason = response.reason_phrase
        except httpx.ConnectTimeout:
            raise TransportError(
                f"cannot reach the coordinator at {self._base_url}: no connection within "
                f"{self._timeout:g} s; {_CONNECT_HINT}",
                idempotency_key=idempotency_key,
            ) from None
        except httpx.TimeoutException as exc:
            raise TransportError(
                f"no answer from the coordinator at {self._base_url} within "
                f"{self._timeout:g} s ({self._describe(exc)}); it may be busy: retry, "
                "or give a longer timeout",
                idempotency_key=idempotency_key,
            ) from None
        except httpx.ConnectError as exc:
            raise TransportError(
                f"cannot reach the coordinator at {self._base_url}: "
                f"{self._describe(exc)}; {_CONNECT_HINT}",
                idempotency_key=idempotency_key,
            ) from None
        except httpx.HTTPError as exc:
            raise TransportError(
                f"the connection to the coordinator at {self._base_url} failed: "
                f"{self._describe(exc)}; {_CONNECT_HINT}",
                idempotency_key=idempotency_key,
            ) from None
        if 200 <= status < 300:
            return status, data
        if 300 <= status < 400:
            where = self._clean(location, _TEXT_DETAIL_CHARS) or "nowhere"
            raise ApiError(
                status,
                f"the coordinator redirected {method} {path} to {where}; "
                "give the address it redirects to as the coordinator URL",
                idempotency_key=idempotency_key,
            )
        detail, field = self._error_detail(data, reason)
        raise ApiError(status, detail, field, idempotency_key=idempotency_key)

    def _error_detail(self, data: bytes, reason: str) -> tuple[str, str | None]:
        """The one-line detail (and field) of an error answer, whatever shape it has."""
        text = data.decode("utf-8", "replace")
        try:
            value = json.loads(data) if data.strip() else None
        except (ValueError, RecursionError):
            value = None
        if not isinstance(value, dict):
            return self._clean(text, _TEXT_DETAIL_CHARS) or reason or "(no message)", None
        detail = value.get("detail")
        field = value.get("field")
        field_text = None
        if isinstance(field, str):
            field_text = self._clean(field, _TEXT_DETAIL_CHARS) or None
        if isinstance(detail, str):
            return self._clean(detail, _JSON_DETAIL_CHARS) or reason or "(no message)", field_text
        if isinstance(detail, list) and detail:
            shown = [_validation_error(item) for item in detail[:_VALIDATION_ERRORS_SHOWN]]
            return self._clean("; ".join(shown), _JSON_DETAIL_CHARS), field_text
        return self._clean(text, _TEXT_DETAIL_CHARS) or reason or "(no message)", field_text

    def _describe(self, exc: httpx.HTTPError) -> str:
        """A short, key-free description of a transport failure."""
        message = str(exc)
        if "refused" in message.lower():
            return "connection refused"
        return self._clean(message, _TEXT_DETAIL_CHARS) or type(exc).__name__

    def _clean(self, text: str, limit: int) -> str:
        """``text`` as one printable line of at most ``limit`` characters, with the API key
        (should a server echo it) blanked out."""
        for secret in self._secrets:
            text = text.replace(secret, "[API key]")
        text = "".join(char if char.isprintable() else " " for char in text)
        text = " ".join(text.split())
        if len(text) > limit:
            text = text[: limit - 1] + "…"
        return text


def _check_base_url(base_url: str) -> str:
    if not isinstance(base_url, str):
        raise ValueError(f"coordinator URL must be a string (got {type(base_url).__name__})")
    shown = base_url if len(base_url) <= 200 else base_url[:199] + "…"
    if base_url != base_url.strip() or any(not char.isprintable() for char in base_url):
        raise ValueError(f"coordinator URL {shown!r} contains spaces or control characters")
    try:
        url = httpx.URL(base_url)
    except httpx.InvalidURL as exc:
        raise ValueError(f"coordinator URL {shown!r} is not a valid URL: {exc}") from None
    if url.scheme not in ("http", "https"):
        raise ValueError(
            f"coordinator URL {shown!r} must start with http:// or https:// "
            "(for example http://127.0.0.1:8000)"
        )
    if not url.host:
        raise ValueError(f"coordinator URL {shown!r} has no host")
    if url.userinfo:
        raise ValueError(
            "coordinator URL must not contain a user name or password; give the API key instead"
        )
    if url.query or "?" in base_url:
        raise ValueError(f"coordinator URL {shown!r} must not have a query (?…)")
    if url.fragment or "#" in base_url:
        raise ValueError(f"coordinator URL {shown!r} must not have a fragment (#…)")
    return base_url.rstrip("/")


def _check_api_key(api_key: str | None) -> str | None:
    if api_key is None:
        return None
    if not isinstance(api_key, str):
        raise ValueError(f"API key must be a string (got {type(api_key).__name__})")
    if not api_key:
        raise ValueError("API key is empty; leave it out to call only the public endpoints")
    if not _API_KEY_CHARS.fullmatch(api_key):
        raise ValueError(
            "API key contains spaces, line breaks or non-ASCII characters; "
            "keys look like tally_<id>_<secret> (strip any trailing newline)"
        )
    return api_key


def _idempotency(key: str | None) -> str:
    """The given Idempotency-Key, checked, or a fresh random one."""
    if key is None:
        return uuid.uuid4().hex
    if not isinstance(key, str) or not _IDEMPOTENCY_KEY.fullmatch(key):
        raise ValueError("idempotency_key must be 1 to 255 visible ASCII characters with no spaces")
    return key


def _segment(name: str, value: str) -> str:
    """``value`` quoted as one URL path segment; refuses what would change the path."""
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string (got {type(value).__name__})")
    if value in ("", ".", ".."):
        raise ValueError(f"{name} must not be empty, '.' or '..' (got {value!r})")
    return quote(value, safe="")


def _query(query: dict[str, str | int | float | bool | None] | None) -> dict[str, str]:
    """Query parameters as strings: ``None`` dropped, booleans as ``true``/``false``."""
    params: dict[str, str] = {}
    for name, value in (query or {}).items():
        if value is None:
            continue
        if isinstance(value, bool):
            params[name] = "true" if value else "false"
        elif isinstance(value, str):
            params[name] = value
        elif isinstance(value, int):
            params[name] = str(value)
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise ValueError(f"query parameter {name} must be a finite number (got {value})")
            params[name] = repr(value)
        else:
            raise ValueError(
                f"query parameter {name} must be a string, number or boolean "
                f"(got {type(value).__name__})"
            )
    return params


def _encode_body(body: Any) -> bytes:
    try:
        text = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"request body cannot be sent as JSON: {exc}") from None
    return text.encode("utf-8")


def _read_bounded(response: httpx.Response) -> bytes | None:
    """The whole body of ``response``, or None when it is longer than MAX_RESPONSE_BYTES."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_RESPONSE_BYTES:
        return None
    data = bytearray()
    for chunk in response.iter_bytes():
        data += chunk
        if len(data) > MAX_RESPONSE_BYTES:
            return None
    return bytes(data)


def _validation_error(item: Any) -> str:
    """One FastAPI validation error as ``body.rounds: Input should be …``."""
    if not isinstance(item, dict):
        return str(item)
    loc = item.get("loc")
    msg = str(item.get("msg", "invalid"))
    if isinstance(loc, list) and loc:
        return ".".join(str(part) for part in loc) + ": " + msg
    return msg


# -- JobSpec from the CLI's options ------------------------------------------------------


def spec_from_options(
    *,
    datasets: list[str],
    model: str,
    rounds: int,
    local_epochs: int,
    batch_size: int,
    learning_rate: str,
    strategy: str = "fedavg",
    strategy_options: dict[str, Any] | None = None,
    min_hosts: int = 1,
) -> dict[str, Any]:
    """The JobSpec for :meth:`TallyClient.quote` and :meth:`TallyClient.create_job`.

    Each ``datasets`` item is ``DATASET_ID:EPSILON[:DELTA]`` (δ defaults to ``1e-5``), for
    example ``ds_3f…:1.0`` or ``ds_3f…:0.5:1e-6``. Decimals stay the strings given, so
    the coordinator sees exactly what was typed. Raises ValueError naming the bad item or
    option; whether the catalog allows the request is the coordinator's to say.
    """
    if not datasets:
        raise ValueError("give at least one dataset as DATASET_ID:EPSILON[:DELTA]")
    items: list[dict[str, str]] = []
    seen: set[str] = set()
    for raw in datasets:
        item = _dataset_item(raw)
        if item["dataset_id"] in seen:
            raise ValueError(f"dataset {item['dataset_id']!r} is named twice; name it once")
        seen.add(item["dataset_id"])
        items.append(item)
    if not isinstance(model, str) or not model.strip():
        raise ValueError("model must be a model name such as 'mlp' (see `tally models`)")
    if not isinstance(strategy, str) or not strategy.strip():
        raise ValueError("strategy must be a strategy name such as 'fedavg'")
    for name, value in (
        ("rounds", rounds),
        ("local_epochs", local_epochs),
        ("batch_size", batch_size),
        ("min_hosts", min_hosts),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a whole number of at least 1 (got {value!r})")
    _positive_decimal("learning_rate", learning_rate, upper=None)
    if strategy_options is not None and not isinstance(strategy_options, dict):
        raise ValueError(
            f"strategy_options must be a mapping of option names to values "
            f"(got {type(strategy_options).__name__})"
        )
    return {
        "datasets": items,
        "model": model,
        "rounds": rounds,
        "local_epochs": local_epochs,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "strategy": {"name": strategy, "options": dict(strategy_options or {})},
        "min_hosts": min_hosts,
    }


def _dataset_item(raw: str) -> dict[str, str]:
    """One ``DATASET_ID:EPSILON[:DELTA]`` item as a JobSpec dataset entry."""
    form = "write it as DATASET_ID:EPSILON[:DELTA], for example ds_3f…:1.0"
    if not isinstance(raw, str):
        raise ValueError(f"dataset {raw!r} is not text; {form}")
    parts = raw.split(":")
    if len(parts) not in (2, 3):
        raise ValueError(f"dataset {raw!r} has {len(parts)} part(s); {form}")
    dataset_id, epsilon = parts[0], parts[1]
    delta = parts[2] if len(parts) == 3 else _DEFAULT_DELTA
    if not dataset_id or any(char.isspace() or not char.isprintable() for char in dataset_id):
        raise ValueError(f"dataset {raw!r}: the dataset id is empty or has spaces; {form}")
    try:
        _positive_decimal("ε", epsilon, upper=None)
        _positive_decimal("δ", delta, upper=Decimal(1))
    except ValueError as exc:
        raise ValueError(f"dataset {raw!r}: {exc}") from None
    return {"dataset_id": dataset_id, "target_epsilon": epsilon, "delta": delta}


def _positive_decimal(name: str, text: str, *, upper: Decimal | None) -> Decimal:
    """``text`` as a finite decimal above 0 (and below ``upper``); ValueError otherwise."""
    if not isinstance(text, str):
        raise ValueError(f"{name} must be a decimal string such as '0.05' (got {text!r})")
    try:
        value = Decimal(text.strip()) if text.strip() == text else None
    except InvalidOperation:
        value = None
    if value is None or not value.is_finite():
        raise ValueError(f"{name} {text!r} is not a decimal number")
    if value <= 0:
        raise ValueError(f"{name} {text!r} must be greater than 0")
    if upper is not None and value >= upper:
        raise ValueError(f"{name} {text!r} must be less than {upper}")
    return value
