"""Unit tests of clients.sdk: what goes on the wire, how errors read, how options parse.

Every request goes to an ``httpx.MockTransport`` (plus one real, refused loopback port), so
these tests pin the SDK's own behaviour; the end-to-end tests against the coordinator
live elsewhere.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from clients.sdk import (
    MAX_RESPONSE_BYTES,
    ApiError,
    TallyClient,
    TransportError,
    spec_from_options,
)

API_KEY = "tally_0123456789abcdef_" + "s3cr3tS3cr3tS3cr3tS3cr3tS3cr3tS3cr3tS3cr3tX"
BASE = "http://coordinator.test:8000"
Handler = Callable[[httpx.Request], httpx.Response]


class Wire:
    """A mock coordinator that records every request and answers with ``handler``."""

    def __init__(self, handler: Handler | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self.handler = handler or (lambda request: httpx.Response(200, json={"ok": True}))

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        return self.handler(request)

    def client(self, api_key: str | None = API_KEY, base_url: str = BASE) -> TallyClient:
        return TallyClient(base_url, api_key, transport=httpx.MockTransport(self))

    @property
    def last(self) -> httpx.Request:
        assert self.requests, "no request was sent"
        return self.requests[-1]


def body_of(request: httpx.Request) -> Any:
    assert request.headers["content-type"] == "application/json"
    return json.loads(request.content)


def answering(status: int, **kwargs: Any) -> Wire:
    return Wire(lambda request: httpx.Response(status, **kwargs))


def raising(exc: Exception) -> Wire:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    return Wire(handler)


def example_spec() -> dict[str, Any]:
    return spec_from_options(
        datasets=["ds_0a1b2c3d4e5f60718293a4b5c6:1.0"],
        model="mlp",
        rounds=3,
        local_epochs=1,
        batch_size=32,
        learning_rate="0.05",
    )


# -- requests on the wire -----------------------------------------------------------------


def test_create_account_sends_method_path_auth_body_and_a_fresh_idempotency_key() -> None:
    wire = Wire(lambda request: httpx.Response(201, json={"account": {"id": "acc_1"}}))
    with wire.client() as client:
        answer = client.create_account("Ada", "buyer")
        client.create_account("Ada", "buyer")
    first, second = wire.requests
    assert answer == {"account": {"id": "acc_1"}}
    assert first.method == "POST"
    assert first.url.raw_path == b"/v1/accounts"
    assert first.headers["authorization"] == f"Bearer {API_KEY}"
    assert body_of(first) == {"name": "Ada", "role": "buyer"}
    key = first.headers["idempotency-key"]
    assert re.fullmatch(r"[0-9a-f]{32}", key)
    assert second.headers["idempotency-key"] != key


def test_a_given_idempotency_key_is_sent_as_is() -> None:
    wire = Wire()
    wire.client().create_key("acc_1", "laptop", idempotency_key="retry-7f3a")
    assert wire.last.method == "POST"
    assert wire.last.url.raw_path == b"/v1/accounts/acc_1/keys"
    assert wire.last.headers["idempotency-key"] == "retry-7f3a"
    assert body_of(wire.last) == {"label": "laptop"}


@pytest.mark.parametrize(
    ("call", "path", "body"),
    [
        (
            lambda c: c.link_identity({"payload": "p"}),
            "/v1/identities",
            {"proof": {"payload": "p"}},
        ),
        (
            lambda c: c.register_host("did:key:z6Mkh", {"type": "dev"}),
            "/v1/hosts",
            {"host_did": "did:key:z6Mkh", "evidence": {"type": "dev"}},
        ),
        (
            lambda c: c.publish_manifest({"payload": "m"}),
            "/v1/catalog",
            {"envelope": {"payload": "m"}},
        ),
        (
            lambda c: c.issue_token("job_1", "ds_1"),
            "/v1/jobs/job_1/tokens",
            {"dataset_id": "ds_1"},
        ),
        (lambda c: c.create_key("acc_1"), "/v1/accounts/acc_1/keys", {"label": ""}),
    ],
)
def test_every_creating_post_carries_an_idempotency_key(
    call: Callable[[TallyClient], Any], path: str, body: dict[str, Any]
) -> None:
    wire = Wire()
    call(wire.client())
    assert wire.last.method == "POST"
    assert wire.last.url.raw_path == path.encode()
    assert body_of(wire.last) == body
    assert re.fullmatch(r"[0-9a-f]{32}", wire.last.headers["idempotency-key"])


@pytest.mark.parametrize(
    ("call", "path", "body"),
    [
        (lambda c: c.quote(example_spec()), "/v1/quotes", example_spec()),
        (lambda c: c.fund_job("job_1"), "/v1/jobs/job_1/fund", None),
        (lambda c: c.cancel_job("job_1"), "/v1/jobs/job_1/cancel", None),
        (
            lambda c: c.cancel_job("job_1", "changed my mind"),
            "/v1/jobs/job_1/cancel",
            {"reason": "changed my mind"},
        ),
        (
            lambda c: c.revoke_key("acc_1", "0123456789abcdef"),
            "/v1/accounts/acc_1/keys/0123456789abcdef/revoke",
            None,
        ),
        (
            lambda c: c.revoke_listing("ds_1", "consent withdrawn"),
            "/v1/catalog/ds_1/revoke",
            {"reason": "consent withdrawn"},
        ),
    ],
)
def test_posts_that_create_nothing_carry_no_idempotency_key(
    call: Callable[[TallyClient], Any], path: str, body: dict[str, Any] | None
) -> None:
    wire = Wire()
    call(wire.client())
    assert wire.last.method == "POST"
    assert wire.last.url.raw_path == path.encode()
    assert "idempotency-key" not in wire.last.headers
    if body is None:
        assert wire.last.content == b""
    else:
        assert body_of(wire.last) == body


def test_create_job_sends_the_spec_with_its_budget() -> None:
    wire = Wire(lambda request: httpx.Response(201, json={"id": "job_1", "status": "draft"}))
    job = wire.client().create_job(example_spec(), "25.00", "USD", idempotency_key="k1")
    assert job == {"id": "job_1", "status": "draft"}
    assert wire.last.url.raw_path == b"/v1/jobs"
    assert wire.last.headers["idempotency-key"] == "k1"
    assert body_of(wire.last) == {
        **example_spec(),
        "budget": {"amount": "25.00", "currency": "USD"},
    }


def test_path_segments_are_quoted_so_an_id_cannot_change_the_path() -> None:
    wire = Wire()
    client = wire.client(base_url=BASE + "/tally/")
    client.get_host("did:key:z6MkAbc")
    assert wire.last.url.raw_path == b"/tally/v1/hosts/did%3Akey%3Az6MkAbc"
    client.get_listing("ds/../accounts", version=2)
    assert wire.last.url.raw_path == b"/tally/v1/catalog/ds%2F..%2Faccounts?version=2"
    for bad in ("", ".", ".."):
        with pytest.raises(ValueError, match="job_id must not be empty"):
            client.get_job(bad)
    assert len(wire.requests) == 2


def test_get_and_list_calls_send_their_query() -> None:
    wire = Wire()
    client = wire.client()
    client.list_jobs()
    assert wire.last.method == "GET"
    assert wire.last.url.path == "/v1/jobs"
    assert dict(wire.last.url.params) == {"limit": "50", "offset": "0"}
    client.list_jobs(status="funded", limit=10, offset=20)
    assert dict(wire.last.url.params) == {"status": "funded", "limit": "10", "offset": "20"}
    client.list_accounts(limit=5)
    assert wire.last.url.path == "/v1/accounts"
    assert dict(wire.last.url.params) == {"limit": "5", "offset": "0"}
    client.get_listing("ds_1")
    assert wire.last.url.raw_path == b"/v1/catalog/ds_1"


def test_search_catalog_drops_none_and_spells_booleans() -> None:
    wire = Wire(lambda request: httpx.Response(200, json={"items": [], "total": 0}))
    answer = wire.client().search_catalog(
        q="chest x-ray", modality="image", creator=None, include_revoked=False, min_rows=1000
    )
    assert answer == {"items": [], "total": 0}
    assert wire.last.url.path == "/v1/catalog"
    assert dict(wire.last.url.params) == {
        "q": "chest x-ray",
        "modality": "image",
        "include_revoked": "false",
        "min_rows": "1000",
    }
    wire.client().search_catalog(include_revoked=True)
    assert wire.last.url.params["include_revoked"] == "true"


def test_search_catalog_refuses_an_unknown_filter_instead_of_ignoring_it() -> None:
    wire = Wire()
    with pytest.raises(ValueError, match="unknown catalog filter 'max_prize'"):
        wire.client().search_catalog(max_prize="1.00")
    assert wire.requests == []


def test_public_endpoints_do_not_get_the_api_key() -> None:
    wire = Wire(lambda request: httpx.Response(200, json={"status": "ok"}))
    client = wire.client()
    client.health()
    client.info()
    client.log_checkpoint()
    client.log_tile("tile/0/000")
    assert [r.url.path for r in wire.requests] == [
        "/healthz",
        "/v1/info",
        "/log/checkpoint",
        "/log/tile/0/000",
    ]
    assert all("authorization" not in r.headers for r in wire.requests)
    client.witnesses()
    assert wire.last.url.path == "/v1/log/witnesses"
    assert wire.last.headers["authorization"] == f"Bearer {API_KEY}"


def test_a_client_without_a_key_sends_no_authorization() -> None:
    wire = Wire()
    wire.client(api_key=None).whoami()
    assert wire.last.url.path == "/v1/accounts/me"
    assert "authorization" not in wire.last.headers


def test_log_reads_return_the_exact_bytes() -> None:
    note = b"example.com/log\n4\nabc=\n\n\xe2\x80\x94 example.com/log AAAA\n"
    wire = answering(200, content=note, headers={"content-type": "text/plain"})
    client = wire.client()
    assert client.log_checkpoint() == note
    assert client.log_tile("tile/entries/x001/000.p/5") == note
    assert wire.last.url.raw_path == b"/log/tile/entries/x001/000.p/5"


@pytest.mark.parametrize(
    "path",
    [
        "../checkpoint",
        "tile/0/0",
        "tile/0/000/",
        "/tile/0/000",
        "tile/x/000",
        "tile/0/000.p/",
        "tile/0/000\n",
    ],
)
def test_log_tile_refuses_paths_that_are_not_tiles(path: str) -> None:
    wire = Wire()
    with pytest.raises(ValueError, match="not a C2SP tile path"):
        wire.client().log_tile(path)
    assert wire.requests == []


def test_log_entry_takes_a_non_negative_index() -> None:
    wire = Wire()
    wire.client().log_entry(7)
    assert wire.last.url.raw_path == b"/v1/log/entries/7"
    with pytest.raises(ValueError, match="non-negative"):
        wire.client().log_entry(-1)
    assert len(wire.requests) == 1


def test_a_bad_idempotency_key_is_refused_before_sending() -> None:
    wire = Wire()
    with pytest.raises(ValueError, match="idempotency_key"):
        wire.client().create_account("Ada", "buyer", idempotency_key="has space")
    with pytest.raises(ValueError, match="idempotency_key"):
        wire.client().create_account("Ada", "buyer", idempotency_key="x" * 256)
    with pytest.raises(ValueError, match="idempotency_key"):
        wire.client().create_account("Ada", "buyer", idempotency_key="line\n")
    assert wire.requests == []


# -- errors -------------------------------------------------------------------------------


def test_validation_errors_are_flattened_to_one_line() -> None:
    errors = [
        {"loc": ["body", "rounds"], "msg": "Input should be greater than 0", "type": "x"},
        {"loc": ["body", "datasets", 0, "delta"], "msg": "Field required", "type": "x"},
        {"loc": ["query", "limit"], "msg": "Input should be a valid integer", "type": "x"},
        {"loc": ["body", "model"], "msg": "the fourth is left out", "type": "x"},
    ]
    wire = answering(422, json={"detail": errors})
    with pytest.raises(ApiError) as caught:
        wire.client().quote(example_spec())
    assert caught.value.status == 422
    assert str(caught.value) == (
        "HTTP 422: body.rounds: Input should be greater than 0; "
        "body.datasets.0.delta: Field required; query.limit: Input should be a valid integer"
    )


def test_a_string_detail_and_its_field_make_the_message() -> None:
    wire = answering(403, json={"detail": "only an admin may create accounts", "field": "role"})
    with pytest.raises(ApiError) as caught:
        wire.client().create_account("Ada", "admin")
    error = caught.value
    assert (error.status, error.detail, error.field) == (
        403,
        "only an admin may create accounts",
        "role",
    )
    assert str(error) == "HTTP 403: only an admin may create accounts (field: role)"
    assert error.idempotency_key == wire.last.headers["idempotency-key"]
    assert not isinstance(error, TransportError)


def test_a_detail_without_field_has_no_field_suffix() -> None:
    wire = answering(404, json={"detail": "no job 'job_9'"})
    with pytest.raises(ApiError) as caught:
        wire.client().get_job("job_9")
    assert str(caught.value) == "HTTP 404: no job 'job_9'"
    assert caught.value.field is None


def test_a_non_json_error_body_becomes_its_first_200_characters_on_one_line() -> None:
    page = "<html>\n<body>Bad gateway: upstream\tdown</body>\n" + "x" * 500 + "</html>"
    wire = answering(502, text=page, headers={"content-type": "text/html"})
    with pytest.raises(ApiError) as caught:
        wire.client().models()
    error = caught.value
    assert error.status == 502
    assert error.detail.startswith("<html> <body>Bad gateway: upstream down</body> xxx")
    assert len(error.detail) <= 200
    assert "\n" not in str(error)


def test_an_empty_error_body_falls_back_to_the_reason_phrase() -> None:
    wire = answering(503)
    with pytest.raises(ApiError, match=r"^HTTP 503: Service Unavailable$"):
        wire.client().models()


def test_control_characters_from_the_server_do_not_reach_the_terminal() -> None:
    wire = answering(400, json={"detail": "bad\nthing\x1b[31m red\u202e"})
    with pytest.raises(ApiError) as caught:
        wire.client().models()
    assert str(caught.value) == "HTTP 400: bad thing [31m red"


def test_a_redirect_is_not_followed() -> None:
    wire = answering(307, headers={"location": "http://elsewhere.test/v1/accounts/me"})
    with pytest.raises(ApiError) as caught:
        wire.client().whoami()
    assert caught.value.status == 307
    assert "http://elsewhere.test/v1/accounts/me" in caught.value.detail
    assert len(wire.requests) == 1


def test_a_success_that_is_not_a_json_object_is_refused() -> None:
    with pytest.raises(ApiError, match="not JSON"):
        answering(200, text="<html>hello</html>").client().info()
    with pytest.raises(ApiError, match="JSON list, not an object"):
        answering(200, json=[1, 2]).client().info()


def test_an_answer_over_16_mib_is_refused() -> None:
    declared = answering(
        200, content=b"{}", headers={"content-length": str(MAX_RESPONSE_BYTES + 1)}
    )
    with pytest.raises(ApiError, match="larger than 16 MiB"):
        declared.client().info()

    def chunks() -> Iterator[bytes]:
        block = b" " * (1024 * 1024)
        for _ in range(17):
            yield block

    streamed = Wire(lambda request: httpx.Response(200, content=chunks()))
    with pytest.raises(ApiError, match="larger than 16 MiB"):
        streamed.client().log_checkpoint()


def test_an_unreachable_coordinator_is_a_transport_error_with_the_hint() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with TallyClient(url, API_KEY, timeout=5) as client, pytest.raises(TransportError) as caught:
        client.whoami()
    error = caught.value
    assert isinstance(error, ApiError)
    assert error.status == 0
    assert str(error) == (
        f"cannot reach the coordinator at {url}: connection refused; "
        "is `tally coordinator up` running?"
    )


def test_a_failed_creating_post_reports_the_key_to_retry_with() -> None:
    wire = raising(httpx.ConnectError("[Errno 111] Connection refused"))
    with pytest.raises(TransportError) as caught:
        wire.client().create_job(example_spec(), "25.00", "USD")
    assert caught.value.idempotency_key == wire.last.headers["idempotency-key"]
    assert "connection refused" in str(caught.value)


def test_a_timeout_is_a_transport_error_naming_the_wait() -> None:
    wire = raising(httpx.ReadTimeout("timed out"))
    with pytest.raises(TransportError, match=r"no answer from the coordinator at .* within 30 s"):
        wire.client().models()
    wire = raising(httpx.ConnectTimeout("timed out"))
    with pytest.raises(TransportError) as caught:
        wire.client().models()
    assert str(caught.value) == (
        f"cannot reach the coordinator at {BASE}: no connection within 30 s; "
        "is `tally coordinator up` running?"
    )


def test_the_api_key_never_appears_in_errors_or_repr() -> None:
    secret = API_KEY.rsplit("_", 1)[1]
    wire = answering(401, json={"detail": f"key {API_KEY} is revoked", "field": secret})
    client = wire.client()
    with pytest.raises(ApiError) as caught:
        client.whoami()
    assert secret not in str(caught.value)
    assert secret not in repr(caught.value.args)
    assert secret not in repr(client)
    assert repr(client) == f"<TallyClient {BASE} with an API key>"
    refused = raising(httpx.ConnectError(f"refused {API_KEY}"))
    with pytest.raises(TransportError) as transport_caught:
        refused.client().whoami()
    assert secret not in str(transport_caught.value)
    with pytest.raises(ValueError, match="API key") as bad_key:
        TallyClient(BASE, API_KEY + "\n")
    assert secret not in str(bad_key.value)


@pytest.mark.parametrize(
    ("base_url", "problem"),
    [
        ("localhost:8000", "must start with http:// or https://"),
        ("ftp://coordinator.test", "must start with http:// or https://"),
        ("http://coordinator.test/?next=1", "must not have a query"),
        ("http://admin:pw@coordinator.test", "must not contain a user name or password"),
        ("http:///v1", "has no host"),
        (" http://coordinator.test", "spaces or control characters"),
    ],
)
def test_a_bad_base_url_is_refused_with_the_reason(base_url: str, problem: str) -> None:
    with pytest.raises(ValueError, match=re.escape(problem)):
        TallyClient(base_url)


def test_the_base_url_loses_its_trailing_slash() -> None:
    assert TallyClient("https://coordinator.test/api/").base_url == "https://coordinator.test/api"


# -- spec_from_options ---------------------------------------------------------------------


def test_spec_from_options_builds_the_job_spec() -> None:
    spec = spec_from_options(
        datasets=["ds_aaa:1.0", "ds_bbb:0.5:1e-6"],
        model="mlp",
        rounds=3,
        local_epochs=2,
        batch_size=32,
        learning_rate="0.05",
        strategy="fedprox",
        strategy_options={"proximal_mu": "0.1"},
        min_hosts=2,
    )
    assert spec == {
        "datasets": [
            {"dataset_id": "ds_aaa", "target_epsilon": "1.0", "delta": "1e-5"},
            {"dataset_id": "ds_bbb", "target_epsilon": "0.5", "delta": "1e-6"},
        ],
        "model": "mlp",
        "rounds": 3,
        "local_epochs": 2,
        "batch_size": 32,
        "learning_rate": "0.05",
        "strategy": {"name": "fedprox", "options": {"proximal_mu": "0.1"}},
        "min_hosts": 2,
    }
    assert example_spec()["strategy"] == {"name": "fedavg", "options": {}}
    assert example_spec()["min_hosts"] == 1


@pytest.mark.parametrize(
    ("item", "problem"),
    [
        ("ds_aaa", "has 1 part"),
        ("ds_aaa:1:1e-5:x", "has 4 part"),
        (":1.0", "dataset id is empty"),
        ("ds aaa:1.0", "dataset id is empty or has spaces"),
        ("ds_aaa:lots", "ε 'lots' is not a decimal number"),
        ("ds_aaa:", "ε '' is not a decimal number"),
        ("ds_aaa:nan", "ε 'nan' is not a decimal number"),
        ("ds_aaa:Infinity", "ε 'Infinity' is not a decimal number"),
        ("ds_aaa:0", "ε '0' must be greater than 0"),
        ("ds_aaa:-1", "ε '-1' must be greater than 0"),
        ("ds_aaa:1.0:1", "δ '1' must be less than 1"),
        ("ds_aaa:1.0:tiny", "δ 'tiny' is not a decimal number"),
    ],
)
def test_spec_from_options_names_the_bad_dataset_item(item: str, problem: str) -> None:
    with pytest.raises(ValueError, match=re.escape(problem)) as caught:
        spec_from_options(
            datasets=["ds_ok:1.0", item],
            model="mlp",
            rounds=1,
            local_epochs=1,
            batch_size=8,
            learning_rate="0.1",
        )
    assert f"dataset {item!r}" in str(caught.value)


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"datasets": []}, "at least one dataset"),
        ({"datasets": ["ds_a:1", "ds_a:2"]}, "'ds_a' is named twice"),
        ({"rounds": 0}, "rounds must be a whole number of at least 1 (got 0)"),
        ({"batch_size": True}, "batch_size must be a whole number"),
        ({"min_hosts": 0}, "min_hosts must be a whole number"),
        ({"learning_rate": "fast"}, "learning_rate 'fast' is not a decimal number"),
        ({"learning_rate": "0"}, "learning_rate '0' must be greater than 0"),
        ({"model": " "}, "model must be a model name"),
    ],
)
def test_spec_from_options_refuses_bad_options(options: dict[str, Any], problem: str) -> None:
    arguments: dict[str, Any] = {
        "datasets": ["ds_a:1.0"],
        "model": "mlp",
        "rounds": 1,
        "local_epochs": 1,
        "batch_size": 8,
        "learning_rate": "0.1",
        **options,
    }
    with pytest.raises(ValueError, match=re.escape(problem)):
        spec_from_options(**arguments)


def test_create_job_refuses_a_spec_that_already_has_a_budget() -> None:
    wire = Wire()
    spec = {**example_spec(), "budget": {"amount": "1", "currency": "USD"}}
    with pytest.raises(ValueError, match="already has a budget"):
        wire.client().create_job(spec, "25.00", "USD")
    assert wire.requests == []
