"""Who may call what on the coordinator's HTTP API: authentication, roles and ownership.

Every authenticated endpoint is called without a key, with a malformed, unknown or revoked
key (401 with ``WWW-Authenticate``), by each role that may not use it (403), and by an
account that does not own the record it names (404). Auditors read everything and change
nothing; admins create accounts. Every refusal is checked to have changed nothing. The
requests go through the in-process ASGI app (``TestClient``); the marketplace is built
once per module and only refused requests touch it, except in the tests at the end,
which make their own records.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from coordinator_fixtures import (
    Marketplace,
    Node,
    Party,
    build_marketplace,
    create_party,
    headers,
    link_and_register,
    make_node,
    publish,
)
from httpx import Response
from sqlalchemy import select

from billing.tables import BILLING_TABLES
from coordinator.identity import sign_identity_link
from coordinator.tables import COORDINATOR_TABLES


def instant(text: str) -> datetime:
    """An API timestamp as an aware datetime (one without an offset is read as UTC: the
    SQLite backend drops offsets, a bug tested in test_api_catalog_jobs.py)."""
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def key_id_of(api_key: str) -> str:
    """The key id inside ``tally_<key id>_<secret>``."""
    return api_key.split("_", 2)[1]


@dataclass
class World:
    """A marketplace with a second buyer, a second creator (own node, published), a
    draft and a funded job of the first buyer, and an account whose key is revoked."""

    market: Marketplace
    admin_id: str
    buyer2: Party
    creator2: Party
    node2: Node
    draft_job: str
    funded_job: str
    revoked: Party

    @property
    def ids(self) -> dict[str, str]:
        """Values for the ``{name}`` placeholders in endpoint paths."""
        market = self.market
        return {
            "buyer": market.buyer.account_id,
            "creator": market.creator.account_id,
            "buyer_key": key_id_of(market.buyer.api_key),
            "creator_key": key_id_of(market.creator.api_key),
            "host": market.node.home.config.creator_did,
            "dataset": market.node.dataset_id,
            "draft": self.draft_job,
            "funded": self.funded_job,
        }

    def call(
        self, method: str, template: str, body: Any, api_key: str | None = None, **extra: str
    ) -> Response:
        """Send one request; ``api_key`` None sends no Authorization header."""
        sent = headers(api_key) if api_key is not None else {}
        sent.update(extra)
        path = template.format(**self.ids)
        response: Response = self.market.client.request(method, path, json=body, headers=sent)
        return response

    def fingerprint(self) -> tuple[object, ...]:
        """Everything a refused request must leave unchanged: the log's size and every row
        of every coordinator table (read straight from the database)."""
        with self.market.coordinator.engine.connect() as connection:
            tables = tuple(
                sorted(repr(tuple(row)) for row in connection.execute(select(table)))
                for table in [*COORDINATOR_TABLES, *BILLING_TABLES]
            )
        return (self.market.coordinator.log.size, tables)


def body_for(kind: str, world: World) -> Any:
    """A well-formed request body of ``kind`` (so that only authorisation can refuse it)."""
    market = world.market
    node = market.node
    if kind == "account":
        return {"name": "mallory", "role": "admin"}
    if kind == "label":
        return {"label": "extra"}
    if kind == "identity":
        proof = sign_identity_link(
            node.home.creator_key(),
            account_id=market.creator.account_id,
            audience=market.coordinator.config.audience,
        )
        return {"proof": proof.to_dict()}
    if kind == "host":
        return {
            "host_did": node.home.config.creator_did,
            "evidence": json.loads(node.evidence.to_json()),
        }
    if kind == "manifest":
        return {"envelope": node.envelope}
    if kind == "reason":
        return {"reason": "testing"}
    if kind == "spec":
        return market.job_spec()
    if kind == "job":
        return {**market.job_spec(), "budget": {"amount": "10.00", "currency": "USD"}}
    if kind == "token":
        return {"dataset_id": node.dataset_id}
    assert kind == "none", kind
    return None


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The module's marketplace (see ``World``); closed after the module."""
    root = tmp_path_factory.mktemp("roles")
    market = build_marketplace(root)
    try:
        client = market.client
        admin_id = client.get("/v1/accounts/me", headers=market.admin.headers).json()["account"][
            "id"
        ]
        buyer2 = create_party(client, market.admin.api_key, "bob2", "buyer")
        creator2 = create_party(client, market.admin.api_key, "alice2", "creator")
        node2 = make_node(root / "nodes2", "alice2-node")
        link_and_register(client, market.coordinator, creator2, node2)
        publish(client, creator2, node2)
        draft_job = market.create_job()["id"]
        funded_job = market.create_job()["id"]
        response = client.post(f"/v1/jobs/{funded_job}/fund", headers=market.buyer.headers)
        assert response.status_code == 200, response.text
        revoked = create_party(client, market.admin.api_key, "eve", "buyer")
        response = client.post(
            f"/v1/accounts/{revoked.account_id}/keys/{key_id_of(revoked.api_key)}/revoke",
            headers=market.admin.headers,
        )
        assert response.status_code == 200, response.text
        yield World(market, admin_id, buyer2, creator2, node2, draft_job, funded_job, revoked)
    finally:
        market.client.close()
        market.coordinator.close()


# Every endpoint that needs an API key: method, path template, body kind.
AUTHENTICATED: list[tuple[str, str, str]] = [
    ("POST", "/v1/accounts", "account"),
    ("GET", "/v1/accounts", "none"),
    ("GET", "/v1/accounts/me", "none"),
    ("GET", "/v1/accounts/{buyer}", "none"),
    ("POST", "/v1/accounts/{buyer}/keys", "label"),
    ("GET", "/v1/accounts/{buyer}/keys", "none"),
    ("POST", "/v1/accounts/{buyer}/keys/{buyer_key}/revoke", "none"),
    ("POST", "/v1/identities", "identity"),
    ("POST", "/v1/hosts", "host"),
    ("GET", "/v1/hosts/{host}", "none"),
    ("POST", "/v1/catalog", "manifest"),
    ("GET", "/v1/catalog", "none"),
    ("GET", "/v1/catalog/{dataset}", "none"),
    ("GET", "/v1/earnings", "none"),
    ("POST", "/v1/catalog/{dataset}/revoke", "reason"),
    ("POST", "/v1/quotes", "spec"),
    ("POST", "/v1/jobs", "job"),
    ("GET", "/v1/jobs", "none"),
    ("GET", "/v1/jobs/{draft}", "none"),
    ("POST", "/v1/jobs/{draft}/fund", "none"),
    ("POST", "/v1/jobs/{draft}/cancel", "reason"),
    ("POST", "/v1/jobs/{funded}/tokens", "token"),
    ("GET", "/v1/log/entries/0", "none"),
    ("GET", "/v1/log/witnesses", "none"),
    ("GET", "/v1/models", "none"),
]


def _endpoint_id(value: object) -> str:
    return str(value) if isinstance(value, str) else ""


# How each bad credential is sent, and what the 401 detail says about it.
BAD_CREDENTIALS: dict[str, tuple[Callable[[World], dict[str, str]], str]] = {
    "no-key": (lambda w: {}, "send your API key"),
    "basic-scheme": (lambda w: {"Authorization": "Basic YWxpY2U6c2VjcmV0"}, "send your API key"),
    "malformed": (lambda w: {"Authorization": "Bearer tally_not-a-key"}, "malformed"),
    "too-long": (lambda w: {"Authorization": "Bearer tally_" + "a" * 200}, "malformed"),
    "unknown-key": (
        lambda w: {"Authorization": f"Bearer tally_{'0' * 16}_{'A' * 43}"},
        "not valid",
    ),
    "wrong-secret": (
        lambda w: {"Authorization": f"Bearer tally_{key_id_of(w.market.buyer.api_key)}_{'A' * 43}"},
        "not valid",
    ),
    "revoked-key": (lambda w: headers(w.revoked.api_key), "revoked"),
}


def assert_problem(response: Response, status: int, *words: str) -> dict[str, Any]:
    """``response`` is an error with ``status`` whose one-line detail says ``words``."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert isinstance(body["detail"], str), body
    for word in words:
        assert word in body["detail"], body
    return body


@pytest.mark.parametrize("credential", sorted(BAD_CREDENTIALS))
@pytest.mark.parametrize(("method", "template", "kind"), AUTHENTICATED, ids=_endpoint_id)
def test_bad_credentials_are_refused_with_401(
    world: World, method: str, template: str, kind: str, credential: str
) -> None:
    make_headers, says = BAD_CREDENTIALS[credential]
    before = world.fingerprint()
    response = world.call(method, template, body_for(kind, world), **make_headers(world))
    assert_problem(response, 401, says)
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert world.fingerprint() == before


def test_authentication_comes_before_body_validation(world: World) -> None:
    response = world.market.client.post("/v1/jobs", json={"rounds": "many"})
    assert_problem(response, 401)
    response = world.market.client.post("/v1/jobs/job_not-an-id/fund", headers=headers("tally_bad"))
    assert_problem(response, 401, "malformed")


@pytest.mark.parametrize(
    "path",
    [
        "/healthz",
        "/v1/info",
        "/log/checkpoint",
        "/log/tile/0/000.p/{size}",
        "/log/tile/entries/000.p/{size}",
    ],
)
def test_public_endpoints_need_no_key(world: World, path: str) -> None:
    size = world.market.coordinator.log.size
    assert 0 < size < 256  # one partial tile of the current width
    response = world.market.client.get(path.format(size=size))
    assert response.status_code == 200, response.text
    assert "WWW-Authenticate" not in response.headers


# Role, method, path, body kind: a role the endpoint does not serve.
WRONG_ROLE: list[tuple[str, str, str, str]] = [
    *[(role, "POST", "/v1/accounts", "account") for role in ("buyer", "creator", "auditor")],
    *[(role, "GET", "/v1/accounts", "none") for role in ("buyer", "creator")],
    *[(role, "POST", "/v1/identities", "identity") for role in ("buyer", "auditor", "admin")],
    *[(role, "POST", "/v1/hosts", "host") for role in ("buyer", "auditor", "admin")],
    *[(role, "POST", "/v1/catalog", "manifest") for role in ("buyer", "auditor", "admin")],
    *[
        (role, "POST", "/v1/catalog/{dataset}/revoke", "reason")
        for role in ("buyer", "auditor", "admin")
    ],
    *[(role, "POST", "/v1/quotes", "spec") for role in ("creator", "auditor", "admin")],
    *[(role, "POST", "/v1/jobs", "job") for role in ("creator", "auditor", "admin")],
    ("buyer", "GET", "/v1/earnings", "none"),
    ("buyer", "GET", "/v1/earnings?account_id={creator}", "none"),
    *[(role, "POST", "/v1/jobs/{draft}/fund", "none") for role in ("creator", "auditor", "admin")],
    *[(role, "POST", "/v1/jobs/{draft}/cancel", "reason") for role in ("creator", "auditor")],
    *[(role, "POST", "/v1/jobs/{funded}/tokens", "token") for role in ("buyer", "auditor")],
    ("auditor", "POST", "/v1/accounts/{buyer}/keys", "label"),
    ("auditor", "POST", "/v1/accounts/{buyer}/keys/{buyer_key}/revoke", "none"),
]


def party(world: World, role: str) -> Party:
    """The module's account with ``role``."""
    market = world.market
    found: Party = getattr(market, role)
    return found


@pytest.mark.parametrize(("role", "method", "template", "kind"), WRONG_ROLE)
def test_wrong_role_is_refused_with_403(
    world: World, role: str, method: str, template: str, kind: str
) -> None:
    before = world.fingerprint()
    response = world.call(method, template, body_for(kind, world), party(world, role).api_key)
    assert_problem(response, 403)
    assert world.fingerprint() == before


def test_every_auditor_write_is_refused(world: World) -> None:
    """The auditor row of the matrix, in one place: every POST except its own keys."""
    writes = [
        (method, template, kind)
        for method, template, kind in AUTHENTICATED
        if isinstance(method, str) and method == "POST"
    ]
    assert len(writes) == 12
    before = world.fingerprint()
    for method, template, kind in writes:
        if template == "/v1/quotes":
            continue  # a quote changes nothing, but it is still buyers only (matrix above)
        response = world.call(method, template, body_for(kind, world), world.market.auditor.api_key)
        assert response.status_code == 403, (template, response.text)
    assert world.fingerprint() == before


# Caller, method, path, body kind: a record that exists but is not the caller's.
NOT_YOURS: list[tuple[str, str, str, str]] = [
    ("buyer2", "GET", "/v1/jobs/{draft}", "none"),
    ("buyer2", "POST", "/v1/jobs/{draft}/fund", "none"),
    ("buyer2", "POST", "/v1/jobs/{draft}/cancel", "reason"),
    ("buyer2", "POST", "/v1/jobs/{funded}/cancel", "none"),
    ("creator", "GET", "/v1/jobs/{draft}", "none"),  # a draft is its buyer's alone
    ("creator2", "GET", "/v1/jobs/{funded}", "none"),  # funded on another's dataset
    ("creator2", "GET", "/v1/earnings?account_id={creator}", "none"),
    ("creator2", "POST", "/v1/catalog/{dataset}/revoke", "reason"),
    ("creator2", "POST", "/v1/jobs/{funded}/tokens", "token"),
    ("creator2", "GET", "/v1/hosts/{host}", "none"),
    ("buyer", "GET", "/v1/hosts/{host}", "none"),
    ("buyer", "GET", "/v1/accounts/{creator}", "none"),
    ("buyer", "GET", "/v1/accounts/{creator}/keys", "none"),
    ("buyer", "POST", "/v1/accounts/{creator}/keys", "label"),
    ("buyer", "POST", "/v1/accounts/{creator}/keys/{creator_key}/revoke", "none"),
    ("creator", "GET", "/v1/accounts/{buyer}", "none"),
]


def caller(world: World, name: str) -> Party:
    """A module account by fixture name (``buyer2``, ``creator2`` or a role)."""
    if name in ("buyer2", "creator2"):
        found: Party = getattr(world, name)
        return found
    return party(world, name)


@pytest.mark.parametrize(("who", "method", "template", "kind"), NOT_YOURS)
def test_another_owners_record_is_not_found(
    world: World, who: str, method: str, template: str, kind: str
) -> None:
    before = world.fingerprint()
    response = world.call(method, template, body_for(kind, world), caller(world, who).api_key)
    assert_problem(response, 404, "no ")
    assert world.fingerprint() == before


def test_a_buyer_lists_only_its_own_jobs(world: World) -> None:
    client = world.market.client
    own = client.get("/v1/jobs", headers=world.market.buyer.headers).json()
    assert {world.draft_job, world.funded_job} <= {job["id"] for job in own["items"]}
    assert {job["buyer"] for job in own["items"]} == {world.market.buyer.account_id}
    assert own["total"] == len(own["items"])
    other = client.get("/v1/jobs", headers=world.buyer2.headers).json()
    assert other["items"] == []
    assert other["total"] == 0


def test_a_creator_sees_the_funded_jobs_on_its_datasets_and_their_earnings(
    world: World,
) -> None:
    market = world.market
    client = market.client
    mine = client.get("/v1/jobs", headers=market.creator.headers).json()
    assert [job["id"] for job in mine["items"]] == [world.funded_job]
    assert mine["total"] == 1
    one = client.get(f"/v1/jobs/{world.funded_job}", headers=market.creator.headers)
    assert one.status_code == 200, one.text
    assert one.json()["datasets"][0]["dataset_id"] == market.node.dataset_id
    others = client.get("/v1/jobs", headers=world.creator2.headers).json()
    assert others == {"items": [], "total": 0, "limit": 50, "offset": 0}

    earned = client.get("/v1/earnings", headers=market.creator.headers)
    assert earned.status_code == 200, earned.text
    report = earned.json()
    assert report["account_id"] == market.creator.account_id
    assert report["basis"] == "quote"
    [dataset] = report["datasets"]
    assert dataset["dataset_id"] == market.node.dataset_id
    [line] = dataset["jobs"]  # the draft is not counted
    funded = one.json()["datasets"][0]
    assert line["job_id"] == world.funded_job
    assert (line["status"], line["bucket"]) == ("funded", "committed")
    assert line["amount_minor"] == funded["amount_minor"] > 0
    assert report["totals"] == [
        {"currency": "USD", "committed": funded["amount_minor"], "completed": 0, "lost": 0}
    ]
    nothing = client.get("/v1/earnings", headers=world.creator2.headers).json()
    assert (nothing["datasets"], nothing["totals"]) == ([], [])
    for reader in (market.auditor, market.admin):
        theirs = client.get(
            "/v1/earnings",
            params={"account_id": market.creator.account_id},
            headers=reader.headers,
        )
        assert theirs.status_code == 200, theirs.text
        assert theirs.json()["totals"] == report["totals"]


def test_a_creator_cannot_register_another_creators_host(world: World) -> None:
    before = world.fingerprint()
    response = world.call("POST", "/v1/hosts", body_for("host", world), world.creator2.api_key)
    assert_problem(response, 403, "not linked to your account")
    assert world.fingerprint() == before


def test_a_creator_cannot_publish_another_creators_manifest(world: World) -> None:
    before = world.fingerprint()
    response = world.call(
        "POST", "/v1/catalog", body_for("manifest", world), world.creator2.api_key
    )
    assert_problem(response, 403, "not linked to your account")
    assert world.fingerprint() == before


@pytest.mark.parametrize("reader", ["auditor", "admin"])
def test_auditor_and_admin_read_everything(world: World, reader: str) -> None:
    market = world.market
    client = market.client
    sent = party(world, reader).headers
    accounts = client.get("/v1/accounts", headers=sent)
    assert accounts.status_code == 200, accounts.text
    names = {account["name"] for account in accounts.json()["items"]}
    assert {"admin", "alice", "bob", "carol", "bob2", "alice2", "eve"} <= names
    for account_id in (market.buyer.account_id, market.creator.account_id, world.admin_id):
        one = client.get(f"/v1/accounts/{account_id}", headers=sent)
        assert one.status_code == 200, one.text
        assert one.json()["id"] == account_id
        keys = client.get(f"/v1/accounts/{account_id}/keys", headers=sent)
        assert keys.status_code == 200, keys.text
        assert keys.json()["items"], keys.text
        assert "api_key" not in keys.text
    revoked_keys = client.get(f"/v1/accounts/{world.revoked.account_id}/keys", headers=sent)
    assert revoked_keys.json()["items"][0]["revoked_at"] is not None
    jobs = client.get("/v1/jobs", headers=sent).json()
    assert {world.draft_job, world.funded_job} <= {job["id"] for job in jobs["items"]}
    funded = client.get("/v1/jobs", params={"status": "funded"}, headers=sent).json()
    assert [job["id"] for job in funded["items"]] == [world.funded_job]
    for job_id in (world.draft_job, world.funded_job):
        job = client.get(f"/v1/jobs/{job_id}", headers=sent)
        assert job.status_code == 200, job.text
        assert job.json()["buyer"] == market.buyer.account_id
    catalog = client.get("/v1/catalog", headers=sent).json()
    assert {item["dataset_id"] for item in catalog["items"]} == {
        market.node.dataset_id,
        world.node2.dataset_id,
    }
    detail = client.get(f"/v1/catalog/{market.node.dataset_id}", headers=sent)
    assert detail.status_code == 200, detail.text
    for node in (market.node, world.node2):
        host = client.get(f"/v1/hosts/{node.home.config.creator_did}", headers=sent)
        assert host.status_code == 200, host.text
        assert host.json()["host_did"] == node.home.config.creator_did
    for index in range(market.coordinator.log.size):
        entry = client.get(f"/v1/log/entries/{index}", headers=sent)
        assert entry.status_code == 200, entry.text
        assert entry.json()["index"] == index
    witnesses = client.get("/v1/log/witnesses", headers=sent)
    assert witnesses.status_code == 200, witnesses.text


@pytest.mark.parametrize("role", ["buyer", "creator", "auditor", "admin"])
def test_every_role_reads_the_catalog_its_own_account_and_the_log(world: World, role: str) -> None:
    client = world.market.client
    account = party(world, role)
    me = client.get("/v1/accounts/me", headers=account.headers)
    assert me.status_code == 200, me.text
    assert me.json()["account"]["role"] == role
    if role != "admin":
        own = client.get(f"/v1/accounts/{account.account_id}", headers=account.headers)
        assert own.status_code == 200, own.text
    catalog = client.get("/v1/catalog", headers=account.headers)
    assert catalog.status_code == 200, catalog.text
    assert catalog.json()["total"] == 2
    detail = client.get(f"/v1/catalog/{world.node2.dataset_id}", headers=account.headers)
    assert detail.status_code == 200, detail.text
    entry = client.get("/v1/log/entries/0", headers=account.headers)
    assert entry.status_code == 200, entry.text


def test_a_creator_sees_its_identities_and_its_host(world: World) -> None:
    market = world.market
    me = market.client.get("/v1/accounts/me", headers=market.creator.headers).json()
    assert [item["did"] for item in me["identities"]] == [market.node.home.config.creator_did]
    host = market.client.get(
        f"/v1/hosts/{market.node.home.config.creator_did}", headers=market.creator.headers
    )
    assert host.status_code == 200, host.text


# -- tests that change state: each makes its own records -------------------------------


def test_admin_creates_accounts_and_the_new_key_works(world: World) -> None:
    client = world.market.client
    response = client.post(
        "/v1/accounts", json={"name": "frank", "role": "buyer"}, headers=world.market.admin.headers
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["account"]["name"] == "frank"
    assert created["account"]["role"] == "buyer"
    assert created["key_id"] == key_id_of(created["api_key"])
    me = client.get("/v1/accounts/me", headers=headers(created["api_key"])).json()
    assert me["account"]["id"] == created["account"]["id"]
    keys = client.get(
        f"/v1/accounts/{created['account']['id']}/keys", headers=world.market.admin.headers
    ).json()
    assert [key["key_id"] for key in keys["items"]] == [created["key_id"]]
    assert created["api_key"] not in json.dumps(keys)
    again = client.post(
        "/v1/accounts",
        json={"name": "frank", "role": "creator"},
        headers=world.market.admin.headers,
    )
    assert_problem(again, 409, "frank")


def test_a_buyer_cannot_create_accounts(world: World) -> None:
    before = world.fingerprint()
    response = world.call(
        "POST", "/v1/accounts", {"name": "grace", "role": "buyer"}, world.market.buyer.api_key
    )
    assert_problem(response, 403, "admin")
    assert world.fingerprint() == before


def test_an_account_rotates_its_own_keys_and_a_revoked_key_stops_at_once(world: World) -> None:
    client = world.market.client
    henry = create_party(client, world.market.admin.api_key, "henry", "buyer")
    second = client.post(
        f"/v1/accounts/{henry.account_id}/keys", json={"label": "laptop"}, headers=henry.headers
    )
    assert second.status_code == 201, second.text
    new_key = second.json()["api_key"]
    assert second.json()["label"] == "laptop"
    revoked = client.post(
        f"/v1/accounts/{henry.account_id}/keys/{key_id_of(henry.api_key)}/revoke",
        headers=headers(new_key),
    )
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["revoked_at"] is not None
    refused = client.get("/v1/accounts/me", headers=henry.headers)
    assert_problem(refused, 401, "revoked")
    assert client.get("/v1/accounts/me", headers=headers(new_key)).status_code == 200
    # Revoking twice keeps it revoked; the admin can revoke any account's key.
    twice = client.post(
        f"/v1/accounts/{henry.account_id}/keys/{key_id_of(henry.api_key)}/revoke",
        headers=headers(new_key),
    )
    assert instant(twice.json()["revoked_at"]) == instant(revoked.json()["revoked_at"])
    by_admin = client.post(
        f"/v1/accounts/{henry.account_id}/keys/{key_id_of(new_key)}/revoke",
        headers=world.market.admin.headers,
    )
    assert by_admin.status_code == 200, by_admin.text
    assert_problem(client.get("/v1/accounts/me", headers=headers(new_key)), 401, "revoked")


def test_an_auditor_may_manage_only_its_own_keys(world: World) -> None:
    """The key endpoints serve "self, admin"; an auditor is "self" for its own account."""
    client = world.market.client
    auditor = create_party(client, world.market.admin.api_key, "ivy", "auditor")
    own = client.post(f"/v1/accounts/{auditor.account_id}/keys", json={}, headers=auditor.headers)
    assert own.status_code == 201, own.text
    other = client.post(
        f"/v1/accounts/{world.market.buyer.account_id}/keys", json={}, headers=auditor.headers
    )
    assert_problem(other, 403, "auditors")


def test_admin_may_cancel_a_buyers_job_but_not_fund_it(world: World) -> None:
    market = world.market
    job = market.create_job()["id"]
    fund = market.client.post(f"/v1/jobs/{job}/fund", headers=market.admin.headers)
    assert_problem(fund, 403, "buyer")
    cancel = market.client.post(
        f"/v1/jobs/{job}/cancel", json={"reason": "fraud check"}, headers=market.admin.headers
    )
    assert cancel.status_code == 200, cancel.text
    assert cancel.json()["status"] == "cancelled"
    assert cancel.json()["events"][-1]["actor"] == world.admin_id
    assert cancel.json()["status_reason"] == "fraud check"


def test_admin_may_fetch_a_token_for_any_creators_dataset(world: World) -> None:
    market = world.market
    response = market.client.post(
        f"/v1/jobs/{world.funded_job}/tokens",
        json={"dataset_id": market.node.dataset_id},
        headers=market.admin.headers,
    )
    assert response.status_code == 201, response.text
    assert response.json()["host_did"] == market.node.home.config.creator_did


def test_unknown_records_are_404_for_those_allowed_to_see_them(world: World) -> None:
    market = world.market
    admin = market.admin.api_key
    for template in (
        "/v1/accounts/acct_nobody",
        "/v1/accounts/acct_nobody/keys",
        "/v1/hosts/did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK",
        f"/v1/catalog/ds_{'0' * 26}",
        f"/v1/jobs/job_{'0' * 26}",
        "/v1/log/entries/100000",
    ):
        assert_problem(world.call("GET", template, None, admin), 404)
    missing_key = world.call(
        "POST", "/v1/accounts/{buyer}/keys/0000000000000000/revoke", None, admin
    )
    assert_problem(missing_key, 404)
