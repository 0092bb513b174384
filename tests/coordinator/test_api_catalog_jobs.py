"""The coordinator's catalog, quotes, jobs, capability tokens and identity links over HTTP.

What a creator, buyer or auditor relies on: a published manifest is verified, logged once
and provable from the log with the keys in ``/v1/info``; a refused one leaves the log as
it was; search filters select what they say; quotes follow the plan and round up; a job
breaking any dataset's terms is refused, naming the field; every job transition is a
coordinator-signed log entry; retried POSTs with an ``Idempotency-Key`` create one
thing; tokens verify for the right host and worker key. Tests that take the ``market``
fixture run on every database backend (SQLite, and PostgreSQL when
``TALLY_TEST_DATABASE_URL`` is set); the rest use SQLite.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from coordinator_fixtures import (
    Marketplace,
    Node,
    Party,
    build_marketplace,
    create_party,
    link_and_register,
    make_coordinator,
    make_node,
    publish,
)
from fastapi.testclient import TestClient
from httpx import Response

from coordinator.accounts import authenticate
from coordinator.api.app import MAX_BODY_BYTES, create_app
from coordinator.database import writing
from coordinator.identity import IDENTITY_LINK_PAYLOAD_TYPE, sign_identity_link
from coordinator.jobs import transition_job
from coordinator.records import DATASET_REVOCATION_PREDICATE, JOB_EVENT_PREDICATE
from coordinator.service import bootstrap_admin
from data_host.attestation import EvidenceKind, produce_evidence, store_evidence
from data_host.home import init_home
from data_host.ingest import ingest_dataset
from data_host.terms import DatasetTerms
from provenance.canonical import canonical_json
from provenance.capability import jwk_thumbprint, verify_capability
from provenance.dsse import Envelope, sign_envelope
from provenance.errors import CapabilityError, ProofError
from provenance.keys import PublicKey, SigningKey
from provenance.merkle import leaf_hash
from provenance.note import Ed25519NoteVerifier, parse_verifier_key
from provenance.statement import Statement, verify_statement
from provenance.tlog.checkpoint import open_checkpoint
from provenance.tlog.proof import TlogProof
from provenance.tlog.records import LogRecord

# -- fixtures and helpers ----------------------------------------------------------------


@pytest.fixture
def market(tmp_path: Path, database_url: str) -> Iterator[Marketplace]:
    """A marketplace on each database backend."""
    built = build_marketplace(tmp_path, database_url=database_url)
    yield built
    built.client.close()
    built.coordinator.close()


@pytest.fixture
def local_market(tmp_path: Path) -> Iterator[Marketplace]:
    """A marketplace on SQLite in the coordinator home (for refusal tables)."""
    built = build_marketplace(tmp_path)
    yield built
    built.client.close()
    built.coordinator.close()


def info(market: Marketplace) -> dict[str, Any]:
    """``/v1/info``: the keys everything is verified against."""
    body: dict[str, Any] = market.client.get("/v1/info").json()
    return body


def log_key(market: Marketplace) -> Ed25519NoteVerifier:
    """The log's checkpoint key, from ``/v1/info``."""
    key = parse_verifier_key(info(market)["log_vkey"])
    assert isinstance(key, Ed25519NoteVerifier)
    return key


def coordinator_key(market: Marketplace) -> PublicKey:
    """The coordinator's signing key, from ``/v1/info`` (its PEM and DID agree)."""
    published = info(market)
    key = PublicKey.from_pem(published["coordinator_public_key_pem"].encode())
    assert key.did == published["coordinator_did"]
    return key


def log_size(market: Marketplace) -> int:
    """The size of the log's latest checkpoint, its signature checked."""
    checkpoint = market.client.get("/log/checkpoint")
    assert checkpoint.status_code == 200
    return open_checkpoint(checkpoint.content, log_key(market)).checkpoint.size


def sha256_hex(data: bytes) -> str:
    """Lowercase hex SHA-256."""
    return hashlib.sha256(data).hexdigest()


def assert_included(market: Marketplace, record: dict[str, Any], index: int, proof: str) -> None:
    """The C2SP tlog-proof shows ``record`` at ``index``, under a checkpoint the log key
    signed; the same proof does not vouch for another record."""
    entry = LogRecord(
        record["type"], record["envelope"].removeprefix("sha256:"), tuple(record["subjects"])
    ).to_entry()
    parsed = TlogProof.parse(proof.encode())
    assert parsed.index == index
    verified = parsed.verify(leaf_hash(entry), log_key(market))
    assert verified.checkpoint.size > index
    with pytest.raises(ProofError):
        parsed.verify(leaf_hash(entry + b" "), log_key(market))


def logged_statement(
    market: Marketplace, index: int, record_type: str, predicate_type: str, party: Party
) -> Statement:
    """The coordinator-signed Statement at log ``index``, its envelope digest, signature and
    inclusion all checked."""
    response = market.client.get(f"/v1/log/entries/{index}", headers=party.headers)
    assert response.status_code == 200, response.text
    entry = response.json()
    assert entry["index"] == index
    assert entry["record"]["type"] == record_type
    envelope = Envelope.from_dict(entry["envelope"])
    assert entry["record"]["envelope"] == f"sha256:{sha256_hex(envelope.to_json())}"
    assert_included(market, entry["record"], index, entry["tlog_proof"])
    return verify_statement(envelope, [coordinator_key(market)], predicate_type=predicate_type)


def problem(response: Response, status: int, field: str | None = None, *words: str) -> None:
    """``response`` is an error with ``status``, naming ``field`` (for 422s) and ``words``.

    Validation errors (a list of ``{loc, msg, type}``) name the field by their ``loc``."""
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    if isinstance(detail, list):
        locations = [".".join(str(part) for part in item["loc"][1:]) for item in detail]
        assert field in locations, detail
        return
    assert response.json().get("field") == field, response.text
    for word in words:
        assert word in detail, detail


def add_node(
    market: Marketplace,
    root: Path,
    name: str,
    *,
    creator: Party | None = None,
    register: bool = True,
    **terms: Any,
) -> Node:
    """A new node of ``creator`` (default: the marketplace's) with a published dataset."""
    node = make_node(root, name, **terms)
    owner = creator or market.creator
    if register:
        link_and_register(market.client, market.coordinator, owner, node)
    else:
        link_only(market, owner, node)
    publish(market.client, owner, node)
    return node


def link_only(market: Marketplace, creator: Party, node: Node) -> None:
    """Link the node's DID to ``creator`` without registering a worker."""
    proof = sign_identity_link(
        node.home.creator_key(),
        account_id=creator.account_id,
        audience=market.coordinator.config.audience,
    )
    response = market.client.post(
        "/v1/identities", json={"proof": proof.to_dict()}, headers=creator.headers
    )
    assert response.status_code == 201, response.text


def make_text_node(root: Path, name: str) -> Node:
    """A node with a text dataset (MIT licence, δ 1e-6, 0.004 USD a sample, 300 rows)."""
    home = init_home(root / name, name)
    data = root / f"{name}.csv"
    with data.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["review", "label"])
        phrases = ("great little gadget", "broke after a week", "works as described")
        for i in range(300):
            writer.writerow([f"{phrases[i % 3]} {i}", i % 2])
    result = ingest_dataset(
        home,
        data,
        DatasetTerms(
            title="Product reviews",
            license="MIT",
            price_per_sample=Decimal("0.004"),
            currency="USD",
            delta=1e-6,
            label="label",
        ),
    )
    evidence = produce_evidence(home, EvidenceKind.DEV)
    store_evidence(home, evidence)
    return Node(home, result.dataset.row.id, result.dataset.signed.envelope.to_dict(), evidence)


def target(dataset_id: str, epsilon: str = "1.0", **more: str) -> dict[str, str]:
    """One ``datasets`` item of a job spec."""
    return {"dataset_id": dataset_id, "target_epsilon": epsilon, **more}


def job_body(
    market: Marketplace, amount: str = "10.00", currency: str = "USD", **overrides: Any
) -> dict[str, Any]:
    """A job creation body: the marketplace's spec, ``overrides`` and a budget."""
    return {**market.job_spec(**overrides), "budget": {"amount": amount, "currency": currency}}


def post_job(market: Marketplace, body: dict[str, Any], buyer: Party | None = None) -> Response:
    """POST /v1/jobs as ``buyer`` (default: the marketplace's)."""
    response: Response = market.client.post(
        "/v1/jobs", json=body, headers=(buyer or market.buyer).headers
    )
    return response


def fund(market: Marketplace, job_id: str) -> Response:
    """POST /v1/jobs/{id}/fund as the buyer."""
    response: Response = market.client.post(f"/v1/jobs/{job_id}/fund", headers=market.buyer.headers)
    return response


def new_job(market: Marketplace, body: dict[str, Any]) -> dict[str, Any]:
    """Create a draft job; it must succeed."""
    response = post_job(market, body)
    assert response.status_code == 201, response.text
    job: dict[str, Any] = response.json()
    return job


def funded_job(market: Marketplace, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """Create and fund a job; both must succeed."""
    job = new_job(market, body or job_body(market))
    response = fund(market, job["id"])
    assert response.status_code == 200, response.text
    funded: dict[str, Any] = response.json()
    return funded


def job_count(market: Marketplace) -> int:
    """How many jobs exist (as the admin sees them)."""
    total: int = market.client.get("/v1/jobs", headers=market.admin.headers).json()["total"]
    return total


# -- publishing --------------------------------------------------------------------------


def test_publish_verifies_logs_once_and_proves_inclusion(
    market: Marketplace, tmp_path: Path
) -> None:
    node = make_node(tmp_path / "more", "beta", rows=200, price="0.002")
    link_and_register(market.client, market.coordinator, market.creator, node)
    before = log_size(market)
    first = market.client.post(
        "/v1/catalog", json={"envelope": node.envelope}, headers=market.creator.headers
    )
    assert first.status_code == 201, first.text
    assert log_size(market) == before + 1
    listing = first.json()
    envelope = Envelope.from_dict(node.envelope)
    assert listing["dataset_id"] == node.dataset_id
    assert listing["manifest_digest"] == sha256_hex(envelope.payload)
    assert listing["creator"] == node.home.config.creator_did
    assert listing["price"] == {"per_sample": "0.002", "currency": "USD"}
    assert listing["rows"] == 200
    assert listing["status"] == "listed"
    assert listing["log"] == {"index": before, "revocation_index": None}
    assert listing["development_mode"] is True
    # The host serves this listing with dev evidence, and the listing says so.
    assert listing["attestation"] == {"evidence_type": "dev", "insecure": True}

    again = market.client.post(
        "/v1/catalog", json={"envelope": node.envelope}, headers=market.creator.headers
    )
    assert again.status_code == 200, again.text
    assert again.json()["manifest_digest"] == listing["manifest_digest"]
    assert again.json()["log"] == listing["log"]
    assert log_size(market) == before + 1

    entry = market.client.get(f"/v1/log/entries/{before}", headers=market.buyer.headers).json()
    assert entry["record"]["type"] == "dataset-manifest"
    assert entry["record"]["envelope"] == f"sha256:{sha256_hex(envelope.to_json())}"
    assert entry["envelope"] == node.envelope
    root = json.loads(envelope.payload)["predicate"]["content"]["chunking"]["root"]
    assert entry["record"]["subjects"] == [f"sha256:{root}"]

    detail = market.client.get(f"/v1/catalog/{node.dataset_id}", headers=market.buyer.headers)
    assert detail.status_code == 200, detail.text
    shown = detail.json()
    assert shown["listing"]["manifest_digest"] == listing["manifest_digest"]
    assert shown["manifest"] == node.envelope
    assert shown["proof"]["index"] == before
    assert shown["proof"]["tree_size"] == before + 1
    assert_included(market, entry["record"], before, shown["proof"]["tlog_proof"])
    # Search results carry the same proof on request, all against one checkpoint.
    found = market.client.get(
        "/v1/catalog", params={"proofs": "true"}, headers=market.buyer.headers
    ).json()["items"]
    assert len(found) == 2
    assert {item["proof"]["tree_size"] for item in found} == {before + 1}
    [mine] = [item for item in found if item["dataset_id"] == node.dataset_id]
    assert mine["attestation"] == {"evidence_type": "dev", "insecure": True}
    assert_included(market, entry["record"], before, mine["proof"]["tlog_proof"])
    plain = market.client.get("/v1/catalog", headers=market.buyer.headers).json()["items"]
    assert all(item["proof"] is None for item in plain)
    version = market.client.get(
        f"/v1/catalog/{node.dataset_id}", params={"version": 1}, headers=market.buyer.headers
    )
    assert version.json()["listing"]["manifest_digest"] == listing["manifest_digest"]
    missing = market.client.get(
        f"/v1/catalog/{node.dataset_id}", params={"version": 2}, headers=market.buyer.headers
    )
    problem(missing, 404)


def _flip_payload_byte(envelope: dict[str, Any]) -> dict[str, Any]:
    payload = bytearray(base64.b64decode(envelope["payload"]))
    payload[len(payload) // 2] ^= 0x01
    return {**envelope, "payload": base64.b64encode(bytes(payload)).decode()}


def _zero_signature(envelope: dict[str, Any]) -> dict[str, Any]:
    keyid = envelope["signatures"][0]["keyid"]
    return {
        **envelope,
        "signatures": [{"keyid": keyid, "sig": base64.b64encode(bytes(64)).decode()}],
    }


def _resigned_by_stranger(envelope: dict[str, Any]) -> dict[str, Any]:
    parsed = Envelope.from_dict(envelope)
    stranger = SigningKey.generate()
    return sign_envelope(parsed.payload, parsed.payload_type, [stranger]).to_dict()


TAMPERED: dict[str, tuple[Callable[[dict[str, Any]], dict[str, Any]], str, str]] = {
    # name: (tamper, field, what the detail says)
    "payload-byte-flipped": (_flip_payload_byte, "envelope", "signature"),
    "signature-zeroed": (_zero_signature, "envelope", "signature"),
    "signed-by-another-key": (_resigned_by_stranger, "envelope", "did not sign"),
    "payload-type-changed": (
        lambda e: {**e, "payloadType": "application/json"},
        "envelope",
        "signature",
    ),
    "no-signatures": (lambda e: {**e, "signatures": []}, "envelope.signatures", ""),
    "empty-signature": (
        lambda e: {**e, "signatures": [{"keyid": "", "sig": ""}]},
        "envelope.signatures.0.sig",
        "",
    ),
    "payload-not-base64": (lambda e: {**e, "payload": "***"}, "envelope", "payload"),
}


@pytest.mark.parametrize("case", sorted(TAMPERED))
def test_tampered_manifest_is_refused_and_not_logged(
    local_market: Marketplace, tmp_path: Path, case: str
) -> None:
    market = local_market
    node = make_node(tmp_path / "more", "beta")
    link_and_register(market.client, market.coordinator, market.creator, node)
    tamper, field, says = TAMPERED[case]
    before = log_size(market)
    response = market.client.post(
        "/v1/catalog", json={"envelope": tamper(node.envelope)}, headers=market.creator.headers
    )
    problem(response, 422, field, says)
    assert log_size(market) == before
    listed = market.client.get("/v1/catalog", headers=market.buyer.headers).json()
    assert [item["dataset_id"] for item in listed["items"]] == [market.node.dataset_id]


@pytest.mark.parametrize(
    ("path", "value", "field", "words"),
    [
        (("price", "per_sample"), "2000000", "price.per_sample", "largest accepted"),
        (("schema", "rows"), -1, "schema.rows", "whole number"),
        (("content", "chunking", "total_bytes"), -1, "chunking.total_bytes", "whole number"),
    ],
    ids=["price", "rows", "bytes"],
)
def test_a_signed_manifest_beyond_the_limits_is_refused_and_not_logged(
    local_market: Marketplace,
    tmp_path: Path,
    path: tuple[str, ...],
    value: Any,
    field: str,
    words: str,
) -> None:
    """The creator's own signature does not make an absurd price or size acceptable."""
    market = local_market
    node = make_node(tmp_path / "more", "beta")
    link_and_register(market.client, market.coordinator, market.creator, node)
    parsed = Envelope.from_dict(node.envelope)
    statement = json.loads(parsed.payload)
    holder = statement["predicate"]
    for name in path[:-1]:
        holder = holder[name]
    holder[path[-1]] = value
    signed = sign_envelope(
        canonical_json(statement), parsed.payload_type, [node.home.creator_key()]
    ).to_dict()
    before = log_size(market)
    response = market.client.post(
        "/v1/catalog", json={"envelope": signed}, headers=market.creator.headers
    )
    problem(response, 422, field, words)
    assert log_size(market) == before
    listed = market.client.get("/v1/catalog", headers=market.buyer.headers).json()
    assert [item["dataset_id"] for item in listed["items"]] == [market.node.dataset_id]


def test_manifest_by_an_unlinked_did_is_refused_and_not_logged(
    local_market: Marketplace, tmp_path: Path
) -> None:
    market = local_market
    stranger = make_node(tmp_path / "more", "stranger")
    before = log_size(market)
    response = market.client.post(
        "/v1/catalog", json={"envelope": stranger.envelope}, headers=market.creator.headers
    )
    problem(response, 403, None, stranger.home.config.creator_did, "not linked")
    # Another creator may not publish a manifest signed by alice's linked DID either.
    other = create_party(market.client, market.admin.api_key, "mallory", "creator")
    response = market.client.post(
        "/v1/catalog", json={"envelope": market.node.envelope}, headers=other.headers
    )
    problem(response, 403, None, "not linked")
    assert log_size(market) == before


# -- search ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "location", "words"),
    [
        ("modality=tabular&cheap=1", ["query", "cheap"], "Extra inputs"),
        ("limit=5&limit=6", ["query", "limit"], "more than once"),
        ("q=a%00b", ["query", "q"], "pattern"),
        ("max_delta=NaN", ["query", "max_delta"], "finite"),
        ("limit=201", ["query", "limit"], "less than or equal"),
        ("&".join(f"x{n}=1" for n in range(65)), ["query"], "too many"),
    ],
    ids=["unknown", "repeated", "control-character", "nan", "over-limit", "too-many"],
)
def test_bad_search_queries_are_refused_naming_the_parameter(
    local_market: Marketplace, query: str, location: list[str], words: str
) -> None:
    response = local_market.client.get(f"/v1/catalog?{query}", headers=local_market.buyer.headers)
    assert response.status_code == 422, response.text
    [first, *_] = response.json()["detail"]
    assert first["loc"] == location
    assert words in first["msg"]


def test_catalog_search_filters(market: Marketplace, tmp_path: Path) -> None:
    """Four datasets, cheapest first: gamma (EUR), alice-node, beta, reviews (text)."""
    root = tmp_path / "more"
    beta = add_node(
        market,
        root,
        "beta",
        rows=200,
        price="0.0025",
        lifetime_epsilon=5.0,
        max_epsilon_per_job=None,
        allowed_uses=("train", "evaluate"),
    )
    gamma = add_node(
        market,
        root,
        "gamma",
        rows=800,
        price="0.0005",
        currency="EUR",
        lifetime_epsilon=20.0,
        max_epsilon_per_job=1.0,
        allowed_uses=("evaluate",),
    )
    reviews = make_text_node(root, "reviews")
    link_and_register(market.client, market.coordinator, market.creator, reviews)
    publish(market.client, market.creator, reviews)
    names = {
        market.node.dataset_id: "alice",
        beta.dataset_id: "beta",
        gamma.dataset_id: "gamma",
        reviews.dataset_id: "reviews",
    }

    def search(**query: Any) -> tuple[list[str], int]:
        response = market.client.get("/v1/catalog", params=query, headers=market.buyer.headers)
        assert response.status_code == 200, (query, response.text)
        page = response.json()
        assert page["limit"] == query.get("limit", 50)
        assert page["offset"] == query.get("offset", 0)
        return [names[item["dataset_id"]] for item in page["items"]], page["total"]

    everything = ["gamma", "alice", "beta", "reviews"]
    assert search() == (everything, 4)
    listings = market.client.get("/v1/catalog", headers=market.buyer.headers).json()["items"]
    by_name = {names[item["dataset_id"]]: item for item in listings}
    assert by_name["reviews"]["modality"] == "text"
    assert by_name["gamma"]["modality"] == "tabular"
    alice_bytes = by_name["alice"]["total_bytes"]
    sized = [name for name in everything if by_name[name]["total_bytes"] == alice_bytes]

    cases: list[tuple[dict[str, Any], list[str]]] = [
        ({"modality": "tabular"}, ["gamma", "alice", "beta"]),
        ({"modality": "text"}, ["reviews"]),
        ({"modality": "image"}, []),
        ({"license": "MIT"}, ["reviews"]),
        ({"license": "CC-BY-4.0"}, ["gamma", "alice", "beta"]),
        ({"currency": "EUR"}, ["gamma"]),
        ({"currency": "USD"}, ["alice", "beta", "reviews"]),
        ({"max_price": "0.001"}, ["gamma", "alice"]),
        ({"max_price": "0.0009"}, ["gamma"]),
        ({"max_price": "0"}, []),
        ({"min_rows": 400}, ["gamma", "alice"]),
        ({"max_rows": 300}, ["beta", "reviews"]),
        ({"min_rows": 300, "max_rows": 400}, ["alice", "reviews"]),
        ({"min_bytes": alice_bytes, "max_bytes": alice_bytes}, sized),
        ({"min_lifetime_epsilon": 10}, ["gamma", "alice", "reviews"]),
        ({"min_lifetime_epsilon": 10.5}, ["gamma"]),
        # No per-job cap (beta, reviews) means any per-job ε fits.
        ({"min_epsilon_per_job": 2}, ["alice", "beta", "reviews"]),
        ({"min_epsilon_per_job": 5}, ["beta", "reviews"]),
        ({"max_delta": 0.000001}, ["reviews"]),
        ({"max_delta": 0.00001}, everything),
        ({"use": "evaluate"}, ["gamma", "beta"]),
        ({"use": "train"}, ["alice", "beta", "reviews"]),
        ({"q": "reviews"}, ["reviews"]),
        ({"q": "SENSOR"}, ["gamma", "alice", "beta"]),
        ({"q": "%"}, []),
        ({"q": "_"}, []),
        ({"creator": gamma.home.config.creator_did}, ["gamma"]),
        ({"currency": "USD", "max_price": "0.003", "use": "train"}, ["alice", "beta"]),
    ]
    for query, expected in cases:
        assert search(**query) == (expected, len(expected)), query

    assert search(limit=2) == (["gamma", "alice"], 4)
    assert search(limit=2, offset=2) == (["beta", "reviews"], 4)
    assert search(offset=4) == ([], 4)
    assert search(currency="USD", limit=1, offset=1) == (["beta"], 3)

    revoked = market.client.post(
        f"/v1/catalog/{beta.dataset_id}/revoke", json={}, headers=market.creator.headers
    )
    assert revoked.status_code == 200, revoked.text
    assert search() == (["gamma", "alice", "reviews"], 3)
    assert search(include_revoked="true") == (everything, 4)
    assert search(include_revoked="true", use="evaluate") == (["gamma", "beta"], 2)
    statuses = {
        names[item["dataset_id"]]: item["status"]
        for item in market.client.get(
            "/v1/catalog", params={"include_revoked": "true"}, headers=market.buyer.headers
        ).json()["items"]
    }
    assert statuses == {
        "gamma": "listed",
        "alice": "listed",
        "beta": "revoked",
        "reviews": "listed",
    }


@pytest.mark.parametrize(
    "query",
    [
        {"modality": "audio"},
        {"currency": "usd"},
        {"max_price": "-1"},
        {"max_price": "1e999"},
        {"min_rows": -1},
        {"limit": 0},
        {"limit": 10_000},
        {"offset": -1},
        {"use": "sell"},
        {"q": "x" * 129},
    ],
)
def test_catalog_search_refuses_bad_filters(
    local_market: Marketplace, query: dict[str, Any]
) -> None:
    response = local_market.client.get(
        "/v1/catalog", params=query, headers=local_market.buyer.headers
    )
    problem(response, 422, next(iter(query)))


# -- revocation --------------------------------------------------------------------------


def test_revocation_delists_logs_and_blocks_jobs(market: Marketplace) -> None:
    dataset = market.node.dataset_id
    draft = new_job(market, job_body(market))
    funded = funded_job(market)
    before = log_size(market)
    response = market.client.post(
        f"/v1/catalog/{dataset}/revoke",
        json={"reason": "consent withdrawn"},
        headers=market.creator.headers,
    )
    assert response.status_code == 200, response.text
    listing = response.json()
    assert listing["status"] == "revoked"
    assert listing["revoke_reason"] == "consent withdrawn"
    assert listing["revoked_at"] is not None
    assert listing["log"]["revocation_index"] == before
    assert log_size(market) == before + 1
    statement = logged_statement(
        market, before, "dataset-revocation", DATASET_REVOCATION_PREDICATE, market.auditor
    )
    assert statement.predicate["dataset_id"] == dataset
    assert statement.predicate["manifest_digest"] == listing["manifest_digest"]
    assert statement.predicate["reason"] == "consent withdrawn"
    assert statement.predicate["requested_by"] == market.creator.account_id
    assert statement.subjects[0].digest == {"sha256": listing["manifest_digest"]}

    # Revoking again changes nothing and logs nothing.
    again = market.client.post(
        f"/v1/catalog/{dataset}/revoke", json={"reason": "again"}, headers=market.creator.headers
    )
    assert again.status_code == 200, again.text
    assert again.json()["log"] == listing["log"]
    assert again.json()["revoke_reason"] == "consent withdrawn"
    assert log_size(market) == before + 1

    page = market.client.get("/v1/catalog", headers=market.buyer.headers).json()
    assert page["items"] == []
    assert page["total"] == 0
    shown = market.client.get(f"/v1/catalog/{dataset}", headers=market.buyer.headers).json()
    assert shown["listing"]["status"] == "revoked"

    republish = market.client.post(
        "/v1/catalog", json={"envelope": market.node.envelope}, headers=market.creator.headers
    )
    problem(republish, 409, None, "revoked")
    refused = post_job(market, job_body(market))
    problem(refused, 422, "datasets[0].dataset_id", "revoked")
    quote = market.client.post("/v1/quotes", json=market.job_spec(), headers=market.buyer.headers)
    problem(quote, 422, "datasets[0].dataset_id", "revoked")
    problem(fund(market, draft["id"]), 422, "datasets[0].dataset_id", "revoked")
    token = market.client.post(
        f"/v1/jobs/{funded['id']}/tokens",
        json={"dataset_id": dataset},
        headers=market.creator.headers,
    )
    problem(token, 409, None, "revoked")
    assert log_size(market) == before + 1


# -- quotes ------------------------------------------------------------------------------


def quote(market: Marketplace, **overrides: Any) -> Response:
    """POST /v1/quotes as the buyer."""
    response: Response = market.client.post(
        "/v1/quotes", json=market.job_spec(**overrides), headers=market.buyer.headers
    )
    return response


def test_quote_plans_rounds_times_epochs_times_rows(market: Marketplace) -> None:
    response = quote(market, rounds=2, local_epochs=3)
    assert response.status_code == 200, response.text
    assert response.json()["quote"] == {
        "currency": "USD",
        "lines": [
            {
                "dataset_id": market.node.dataset_id,
                "planned_samples": 2 * 3 * 400,
                "price_per_sample": "0.001",
                "amount_minor": 240,
            }
        ],
        "platform_fee_bps": 1000,
        "subtotal_minor": 240,
        "platform_fee_minor": 24,
        "total_minor": 264,
        "total": "2.64 USD",
    }


def test_quote_rounds_price_and_fee_up(local_market: Marketplace, tmp_path: Path) -> None:
    tiny = add_node(local_market, tmp_path / "more", "tiny", rows=401, price="0.00003")
    response = quote(local_market, datasets=[target(tiny.dataset_id)], rounds=1)
    assert response.status_code == 200, response.text
    body = response.json()["quote"]
    # 401 x 0.00003 USD = 1.203 cents -> 2; 10 % of 2 cents = 0.2 -> 1.
    assert body["lines"][0]["planned_samples"] == 401
    assert body["lines"][0]["amount_minor"] == 2
    assert (body["subtotal_minor"], body["platform_fee_minor"], body["total_minor"]) == (2, 1, 3)
    assert body["total"] == "0.03 USD"


def test_quote_of_several_datasets(market: Marketplace, tmp_path: Path) -> None:
    beta = add_node(market, tmp_path / "more", "beta", rows=200, price="0.0025")
    response = quote(
        market,
        datasets=[target(beta.dataset_id, "2.0"), target(market.node.dataset_id)],
        rounds=1,
    )
    assert response.status_code == 200, response.text
    body = response.json()["quote"]
    assert [(line["dataset_id"], line["amount_minor"]) for line in body["lines"]] == [
        (beta.dataset_id, 50),
        (market.node.dataset_id, 40),
    ]
    assert (body["subtotal_minor"], body["platform_fee_minor"], body["total_minor"]) == (90, 9, 99)
    job = new_job(
        market,
        job_body(
            market,
            "0.99",
            datasets=[target(beta.dataset_id, "2.0"), target(market.node.dataset_id)],
            rounds=1,
            min_hosts=2,
        ),
    )
    assert job["quote"]["total_minor"] == 99
    assert [item["amount_minor"] for item in job["datasets"]] == [50, 40]
    assert job["budget"] == {"amount_minor": 99, "currency": "USD"}


def test_quote_refuses_mixed_currencies(local_market: Marketplace, tmp_path: Path) -> None:
    euro = add_node(local_market, tmp_path / "more", "euro", currency="EUR")
    response = quote(
        local_market, datasets=[target(local_market.node.dataset_id), target(euro.dataset_id)]
    )
    problem(response, 422, "datasets", "currencies")


def test_platform_fee_follows_the_coordinator(tmp_path: Path) -> None:
    coordinator = make_coordinator(tmp_path / "coordinator", fee_bps=250)
    client = TestClient(create_app(coordinator))
    try:
        admin = bootstrap_admin(coordinator)
        assert client.get("/v1/info").json()["platform_fee_bps"] == 250
        creator = create_party(client, admin, "alice", "creator")
        buyer = create_party(client, admin, "bob", "buyer")
        node = make_node(tmp_path / "nodes", "alice-node")
        link_and_register(client, coordinator, creator, node)
        publish(client, creator, node)
        spec = {"datasets": [target(node.dataset_id)], "model": "mlp", "rounds": 3}
        body = client.post("/v1/quotes", json=spec, headers=buyer.headers).json()["quote"]
        # 1200 samples x 0.001 = 120 cents; 2.5 % = 3 cents.
        assert (body["platform_fee_bps"], body["platform_fee_minor"], body["total_minor"]) == (
            250,
            3,
            123,
        )
    finally:
        client.close()
        coordinator.close()


# -- job creation refusals -----------------------------------------------------------------

Overrides = Callable[[Marketplace], dict[str, Any]]
REFUSALS: list[Any] = [
    # (body changes, status, field, words in the detail)
    pytest.param(
        lambda m: {"budget": {"amount": "1.00", "currency": "USD"}},
        402,
        None,
        ("1.00 USD", "1.32 USD"),
        id="budget-below-quote",
    ),
    pytest.param(
        lambda m: {"budget": {"amount": "10.00", "currency": "EUR"}},
        422,
        "budget.currency",
        ("EUR", "USD"),
        id="budget-in-another-currency",
    ),
    pytest.param(
        lambda m: {"budget": {"amount": "10.005", "currency": "USD"}},
        422,
        "budget.amount",
        ("minor units",),
        id="budget-finer-than-cents",
    ),
    pytest.param(
        lambda m: {"datasets": [target(m.node.dataset_id, "3.5")]},
        422,
        "datasets[0].target_epsilon",
        ("per-job cap",),
        id="epsilon-over-per-job-cap",
    ),
    pytest.param(
        lambda m: {"datasets": [target(m.node.dataset_id, delta="1e-4")]},
        422,
        "datasets[0].delta",
        ("δ",),
        id="delta-over-dataset-delta",
    ),
    pytest.param(
        lambda m: {"model": "cnn-small"}, 422, "model", ("image", "tabular"), id="model-modality"
    ),
    pytest.param(lambda m: {"model": "gpt-9"}, 422, "model", ("gpt-9",), id="unknown-model"),
    pytest.param(
        lambda m: {"strategy": {"name": "fedsgd"}},
        422,
        "strategy.name",
        ("fedsgd",),
        id="unknown-strategy",
    ),
    pytest.param(
        lambda m: {"strategy": {"name": "fedprox", "options": {"proximal_mu": 99}}},
        422,
        "strategy.options.proximal_mu",
        ("between",),
        id="strategy-option-out-of-range",
    ),
    pytest.param(
        lambda m: {"strategy": {"name": "fedavg", "options": {"eta": 0.1}}},
        422,
        "strategy.options",
        ("eta",),
        id="strategy-option-unknown",
    ),
    pytest.param(
        lambda m: {"strategy": {"name": "krum", "options": {"num_malicious_nodes": 1.5}}},
        422,
        "strategy.options.num_malicious_nodes",
        ("whole number",),
        id="strategy-option-not-whole",
    ),
    pytest.param(
        lambda m: {"datasets": [target(m.node.dataset_id), target(m.node.dataset_id)]},
        422,
        "datasets",
        ("twice",),
        id="dataset-twice",
    ),
    pytest.param(
        lambda m: {"datasets": [target("ds_" + "0" * 26)]},
        422,
        "datasets[0].dataset_id",
        ("ds_" + "0" * 26,),
        id="unknown-dataset",
    ),
    pytest.param(lambda m: {"min_hosts": 2}, 422, "min_hosts", ("min_hosts",), id="min-hosts"),
    pytest.param(lambda m: {"batch_size": 401}, 422, "batch_size", ("401",), id="batch-over-rows"),
    # Refused by the request schema (FastAPI's list of {loc, msg, type}).
    pytest.param(lambda m: {"rounds": 0}, 422, "rounds", (), id="rounds-zero"),
    pytest.param(lambda m: {"rounds": 1001}, 422, "rounds", (), id="rounds-too-many"),
    pytest.param(lambda m: {"gpu": "a100"}, 422, "gpu", (), id="unknown-field"),
    pytest.param(
        lambda m: {"datasets": [{**target(m.node.dataset_id), "price": "0"}]},
        422,
        "datasets.0.price",
        (),
        id="unknown-dataset-field",
    ),
    pytest.param(
        lambda m: {"budget": {"amount": "10.00", "currency": "USD", "cap": True}},
        422,
        "budget.cap",
        (),
        id="unknown-budget-field",
    ),
    pytest.param(
        lambda m: {"budget": {"amount": "999999999999e99", "currency": "USD"}},
        422,
        "budget.amount",
        (),
        id="budget-beyond-any-amount",
    ),
    pytest.param(
        lambda m: {"strategy": {"name": "krum", "options": {"num_malicious_nodes": 1e30}}},
        422,
        "strategy.options.num_malicious_nodes",
        (),
        id="strategy-option-huge",
    ),
    pytest.param(lambda m: {"learning_rate": "-0.1"}, 422, "learning_rate", (), id="negative-rate"),
    pytest.param(
        lambda m: {"datasets": [target(m.node.dataset_id, "1.0e")]},
        422,
        "datasets.0.target_epsilon",
        (),
        id="epsilon-not-a-number",
    ),
    pytest.param(
        lambda m: {"datasets": [target("dataset-1")]},
        422,
        "datasets.0.dataset_id",
        (),
        id="malformed-dataset-id",
    ),
    pytest.param(lambda m: {"datasets": []}, 422, "datasets", (), id="no-datasets"),
    pytest.param(
        lambda m: {"budget": {"amount": 10, "currency": "USD"}},
        422,
        "budget.amount",
        (),
        id="budget-amount-not-a-string",
    ),
    pytest.param(
        lambda m: {"datasets": [target(m.node.dataset_id, "0")]},
        422,
        "datasets[0].target_epsilon",
        (),
        id="epsilon-zero",
    ),
    pytest.param(
        lambda m: {"datasets": [target(m.node.dataset_id, delta="0")]},
        422,
        "datasets[0].delta",
        (),
        id="delta-zero",
    ),
]


@pytest.mark.parametrize(("change", "status", "field", "words"), REFUSALS)
def test_job_creation_refusals(
    local_market: Marketplace,
    change: Overrides,
    status: int,
    field: str | None,
    words: tuple[str, ...],
) -> None:
    market = local_market
    before = log_size(market)
    body = {**job_body(market), **change(market)}
    problem(post_job(market, body), status, field, *words)
    assert job_count(market) == 0
    assert log_size(market) == before
    if status != 422 or field is None or field.startswith("budget"):
        return
    # A quote of the same spec (no budget) is refused the same way.
    spec = {key: value for key, value in body.items() if key != "budget"}
    quoted = market.client.post("/v1/quotes", json=spec, headers=market.buyer.headers)
    problem(quoted, 422, field, *words)


@pytest.mark.parametrize("number", ["Infinity", "-Infinity", "NaN"])
def test_non_finite_numbers_are_refused(local_market: Marketplace, number: str) -> None:
    """JSON parsers accept Infinity and NaN; a strategy option must be a finite number."""
    body = job_body(local_market, strategy={"name": "krum", "options": {"num_malicious_nodes": 0}})
    raw = json.dumps(body).replace('"num_malicious_nodes": 0', f'"num_malicious_nodes": {number}')
    for path in ("/v1/jobs", "/v1/quotes"):
        response = local_market.client.post(
            path,
            content=raw.encode(),
            headers={**local_market.buyer.headers, "Content-Type": "application/json"},
        )
        problem(response, 422, "strategy.options.num_malicious_nodes")
    assert job_count(local_market) == 0


def test_oversized_body_is_refused_with_413(local_market: Marketplace) -> None:
    body = {**job_body(local_market), "pad": "x" * MAX_BODY_BYTES}
    response = post_job(local_market, body)
    assert response.status_code == 413, response.text
    assert "limit" in response.json()["detail"]
    assert job_count(local_market) == 0


def test_oversized_chunked_body_is_refused_with_413(local_market: Marketplace) -> None:
    data = json.dumps({**job_body(local_market), "pad": "x" * MAX_BODY_BYTES}).encode()

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(data), 64 * 1024):
            yield data[start : start + 64 * 1024]

    response = local_market.client.post(
        "/v1/jobs",
        content=chunks(),
        headers={**local_market.buyer.headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 413, response.text


def test_lifetime_epsilon_counts_funded_jobs_only(market: Marketplace, tmp_path: Path) -> None:
    scarce = add_node(
        market, tmp_path / "more", "scarce", lifetime_epsilon=4.0, max_epsilon_per_job=3.0
    )

    def body(epsilon: str) -> dict[str, Any]:
        return job_body(market, datasets=[target(scarce.dataset_id, epsilon)], rounds=1)

    first = funded_job(market, body("3"))
    # 3 of 4 are committed: 2 more do not fit, 1 does; drafts commit nothing.
    problem(post_job(market, body("2")), 422, "datasets[0].target_epsilon", "lifetime")
    draft_a = new_job(market, body("1"))
    draft_b = new_job(market, body("1"))
    assert fund(market, draft_a["id"]).status_code == 200
    problem(fund(market, draft_b["id"]), 422, "datasets[0].target_epsilon", "lifetime")
    problem(
        market.client.post(
            "/v1/quotes",
            json={k: v for k, v in body("1").items() if k != "budget"},
            headers=market.buyer.headers,
        ),
        422,
        "datasets[0].target_epsilon",
        "lifetime",
    )
    # Cancelling the funded job gives its ε back.
    cancelled = market.client.post(f"/v1/jobs/{first['id']}/cancel", headers=market.buyer.headers)
    assert cancelled.status_code == 200, cancelled.text
    assert fund(market, draft_b["id"]).status_code == 200
    # Another buyer's jobs count the same.
    other = create_party(market.client, market.admin.api_key, "dora", "buyer")
    problem(post_job(market, body("2.5"), other), 422, "datasets[0].target_epsilon", "lifetime")
    assert post_job(market, body("2"), other).status_code == 201


# -- job states and their log entries ----------------------------------------------------


def test_job_lifecycle_is_logged_and_signed(market: Marketplace) -> None:
    before = log_size(market)
    created = post_job(market, job_body(market))
    assert created.status_code == 201, created.text
    job = created.json()
    assert job["status"] == "draft"
    assert job["buyer"] == market.buyer.account_id
    assert job["development_mode"] is True
    assert job["quote"]["total_minor"] == 132
    assert job["budget"] == {"amount_minor": 1000, "currency": "USD"}
    assert log_size(market) == before + 1
    transitions: list[tuple[str | None, str, str | None]] = [(None, "draft", None)]

    funded = fund(market, job["id"])
    assert funded.status_code == 200, funded.text
    assert funded.json()["status"] == "funded"
    transitions.append(("draft", "funded", None))
    assert log_size(market) == before + 2
    problem(fund(market, job["id"]), 409, None, "funded")

    cancelled = market.client.post(
        f"/v1/jobs/{job['id']}/cancel",
        json={"reason": "changed my mind"},
        headers=market.buyer.headers,
    )
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["status_reason"] == "changed my mind"
    transitions.append(("funded", "cancelled", "changed my mind"))
    assert log_size(market) == before + 3
    again = market.client.post(f"/v1/jobs/{job['id']}/cancel", headers=market.buyer.headers)
    problem(again, 409, None, "cancelled")
    problem(fund(market, job["id"]), 409, None, "cancelled")
    assert log_size(market) == before + 3

    shown = market.client.get(f"/v1/jobs/{job['id']}", headers=market.auditor.headers).json()
    assert shown["status"] == "cancelled"
    events = shown["events"]
    assert [(e["from"], e["to"], e["reason"]) for e in events] == transitions
    assert [e["log_index"] for e in events] == [before, before + 1, before + 2]
    for event in events:
        assert event["actor"] == market.buyer.account_id
        statement = logged_statement(
            market, event["log_index"], "job-event", JOB_EVENT_PREDICATE, market.auditor
        )
        predicate = statement.predicate
        assert (predicate["from"], predicate["to"]) == (event["from"], event["to"])
        assert predicate["job_id"] == job["id"]
        assert predicate["actor"] == market.buyer.account_id
        assert predicate["reason"] == event["reason"]
        assert predicate["buyer"] == market.buyer.account_id
        assert predicate["quote"]["total_minor"] == "132"
        assert predicate["development_mode"] is True
        assert statement.subjects[0].digest == {"sha256": job["spec_digest"]}

    listed = market.client.get(
        "/v1/jobs", params={"status": "cancelled"}, headers=market.buyer.headers
    ).json()
    assert [item["id"] for item in listed["items"]] == [job["id"]]
    drafts = market.client.get(
        "/v1/jobs", params={"status": "draft"}, headers=market.buyer.headers
    ).json()
    assert drafts["items"] == []
    assert drafts["total"] == 0


@pytest.mark.parametrize("end", ["completed", "failed"])
def test_a_running_job_ends_and_every_transition_is_logged(market: Marketplace, end: str) -> None:
    """funded → running → completed | failed: the training launcher (an admin) drives these
    through ``transition_job``; each is a signed job-event in the log, and an ended job
    moves no more. The creator's earnings follow the job's state."""
    job = funded_job(market)
    before = log_size(market)
    coordinator = market.coordinator
    for to in ("running", end):
        with writing(coordinator.engine) as session:
            operator = authenticate(session, market.admin.api_key)
            transition_job(
                session,
                coordinator.log,
                coordinator.signing_key,
                operator,
                job["id"],
                to,
                reason=None if to != "failed" else "a host dropped out",
                now=coordinator.now(),
            )
    assert log_size(market) == before + 2
    shown = market.client.get(f"/v1/jobs/{job['id']}", headers=market.buyer.headers).json()
    assert shown["status"] == end
    assert [(e["from"], e["to"]) for e in shown["events"]] == [
        (None, "draft"),
        ("draft", "funded"),
        ("funded", "running"),
        ("running", end),
    ]
    for event in shown["events"][2:]:
        assert event["actor"] != market.buyer.account_id
        statement = logged_statement(
            market, event["log_index"], "job-event", JOB_EVENT_PREDICATE, market.auditor
        )
        assert (statement.predicate["from"], statement.predicate["to"]) == (
            event["from"],
            event["to"],
        )
    problem(
        market.client.post(f"/v1/jobs/{job['id']}/cancel", headers=market.buyer.headers),
        409,
        None,
        end,
    )
    assert log_size(market) == before + 2

    report = market.client.get("/v1/earnings", headers=market.creator.headers).json()
    [total] = report["totals"]
    amount = shown["datasets"][0]["amount_minor"]
    bucket = "completed" if end == "completed" else "lost"
    assert total == {"currency": "USD", "committed": 0, "completed": 0, "lost": 0, bucket: amount}


def test_cancel_a_draft_without_a_body(market: Marketplace) -> None:
    job = market.create_job()
    response = market.client.post(f"/v1/jobs/{job['id']}/cancel", headers=market.buyer.headers)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"
    assert response.json()["status_reason"] is None
    assert [e["to"] for e in response.json()["events"]] == ["draft", "cancelled"]


def test_job_records_what_was_priced(market: Marketplace) -> None:
    job = new_job(
        market,
        job_body(
            market,
            "5.00",
            rounds=2,
            local_epochs=2,
            batch_size=16,
            learning_rate="0.01",
            strategy={"name": "fedprox", "options": {"proximal_mu": 0.5}},
        ),
    )
    shown = market.client.get(f"/v1/jobs/{job['id']}", headers=market.buyer.headers).json()
    for view in (job, shown):
        assert (view["rounds"], view["local_epochs"], view["batch_size"]) == (2, 2, 16)
        assert view["learning_rate"] == "0.01"
        assert view["strategy"] == {"name": "fedprox", "options": {"proximal_mu": 0.5}}
        item = view["datasets"][0]
        assert item["planned_samples"] == 1600
        assert item["amount_minor"] == 160
        assert item["target_epsilon"] == "1.0"
        assert Decimal(item["delta"]) == Decimal("1e-5")
        listing = market.client.get(
            f"/v1/catalog/{market.node.dataset_id}", headers=market.buyer.headers
        ).json()["listing"]
        assert item["manifest_digest"] == listing["manifest_digest"]
        assert view["quote"]["total"] == "1.76 USD"
        assert view["budget"] == {"amount_minor": 500, "currency": "USD"}


# -- idempotency -------------------------------------------------------------------------


def test_idempotent_job_creation(market: Marketplace) -> None:
    body = job_body(market)
    keyed = {**market.buyer.headers, "Idempotency-Key": "order-42"}
    before = log_size(market)
    first = market.client.post("/v1/jobs", json=body, headers=keyed)
    assert first.status_code == 201, first.text
    assert "Idempotent-Replayed" not in first.headers
    second = market.client.post("/v1/jobs", json=body, headers=keyed)
    assert second.status_code == 201, second.text
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.json() == first.json()
    assert job_count(market) == 1
    assert log_size(market) == before + 1

    changed = market.client.post("/v1/jobs", json={**body, "rounds": 4}, headers=keyed)
    problem(changed, 422, "Idempotency-Key", "different request")
    assert job_count(market) == 1

    # Keys belong to one account: another buyer's same key is a new request.
    other = create_party(market.client, market.admin.api_key, "dora", "buyer")
    theirs = market.client.post(
        "/v1/jobs", json=body, headers={**other.headers, "Idempotency-Key": "order-42"}
    )
    assert theirs.status_code == 201, theirs.text
    assert "Idempotent-Replayed" not in theirs.headers
    assert theirs.json()["id"] != first.json()["id"]
    assert theirs.json()["buyer"] == other.account_id
    assert job_count(market) == 2

    # Without a key every POST creates a job.
    plain = [post_job(market, body).json()["id"] for _ in range(2)]
    assert len(set(plain)) == 2
    assert job_count(market) == 4


def test_idempotency_key_is_bound_to_its_endpoint(market: Marketplace) -> None:
    keyed = {**market.admin.headers, "Idempotency-Key": "setup-1"}
    created = market.client.post(
        "/v1/accounts", json={"name": "dora", "role": "buyer"}, headers=keyed
    )
    assert created.status_code == 201, created.text
    replay = market.client.post(
        "/v1/accounts", json={"name": "dora", "role": "buyer"}, headers=keyed
    )
    assert replay.status_code == 201, replay.text
    assert replay.json() == created.json()
    assert replay.headers["Idempotent-Replayed"] == "true"
    elsewhere = market.client.post(
        f"/v1/accounts/{created.json()['account']['id']}/keys", json={}, headers=keyed
    )
    problem(elsewhere, 422, "Idempotency-Key")


def test_idempotent_publish_and_token(market: Marketplace, tmp_path: Path) -> None:
    node = make_node(tmp_path / "more", "beta")
    link_and_register(market.client, market.coordinator, market.creator, node)
    keyed = {**market.creator.headers, "Idempotency-Key": "publish-beta"}
    before = log_size(market)
    first = market.client.post("/v1/catalog", json={"envelope": node.envelope}, headers=keyed)
    second = market.client.post("/v1/catalog", json={"envelope": node.envelope}, headers=keyed)
    assert (first.status_code, second.status_code) == (201, 201)
    assert second.json() == first.json()
    assert second.headers["Idempotent-Replayed"] == "true"
    assert log_size(market) == before + 1

    job = funded_job(market)
    keyed = {**market.creator.headers, "Idempotency-Key": "token-1"}
    path = f"/v1/jobs/{job['id']}/tokens"
    body = {"dataset_id": market.node.dataset_id}
    token = market.client.post(path, json=body, headers=keyed)
    replay = market.client.post(path, json=body, headers=keyed)
    assert (token.status_code, replay.status_code) == (201, 201)
    assert replay.json() == token.json()
    fresh = market.client.post(path, json=body, headers=market.creator.headers)
    assert fresh.json()["jti"] != token.json()["jti"]


def test_stored_answers_hold_no_secret_in_the_clear(market: Marketplace) -> None:
    """A new API key is shown once: the idempotency record that lets a retry see it again
    holds neither the key nor the Idempotency-Key, only their sealed and hashed forms."""
    idempotency_key = "acct-" + "7" * 32
    keyed = {**market.admin.headers, "Idempotency-Key": idempotency_key}
    created = market.client.post(
        "/v1/accounts", json={"name": "erin", "role": "buyer"}, headers=keyed
    )
    assert created.status_code == 201, created.text
    secret = created.json()["api_key"].split("_", 2)[2]
    with market.coordinator.engine.connect() as connection:
        rows = connection.exec_driver_sql("SELECT key, response_body FROM idempotency_record").all()
    assert rows
    for lookup, sealed in rows:
        assert idempotency_key not in lookup
        assert secret.encode() not in bytes(sealed)
        assert b"api_key" not in bytes(sealed)
    replay = market.client.post(
        "/v1/accounts", json={"name": "erin", "role": "buyer"}, headers=keyed
    )
    assert replay.json() == created.json()


def test_an_expired_idempotency_key_runs_the_request_anew(
    market: Marketplace, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = job_body(market)
    keyed = {**market.buyer.headers, "Idempotency-Key": "order-old"}
    first = market.client.post("/v1/jobs", json=body, headers=keyed)
    assert first.status_code == 201, first.text
    later = market.coordinator.now() + timedelta(hours=24, seconds=1)
    monkeypatch.setattr(market.coordinator, "now", lambda: later)
    second = market.client.post("/v1/jobs", json=body, headers=keyed)
    assert second.status_code == 201, second.text
    assert "Idempotent-Replayed" not in second.headers
    assert second.json()["id"] != first.json()["id"]
    third = market.client.post("/v1/jobs", json=body, headers=keyed)
    assert third.json()["id"] == second.json()["id"]
    assert third.headers["Idempotent-Replayed"] == "true"


@pytest.mark.parametrize("key", ["has space", "tab\there", "x" * 256, ""])
def test_malformed_idempotency_keys_are_refused(local_market: Marketplace, key: str) -> None:
    response = local_market.client.post(
        "/v1/jobs",
        json=job_body(local_market),
        headers={**local_market.buyer.headers, "Idempotency-Key": key},
    )
    assert response.status_code == 422, response.text
    assert job_count(local_market) == 0


# -- capability tokens -------------------------------------------------------------------


def test_token_verifies_for_the_host_and_its_worker_key(market: Marketplace) -> None:
    job = funded_job(market)
    node = market.node
    response = market.client.post(
        f"/v1/jobs/{job['id']}/tokens",
        json={"dataset_id": node.dataset_id},
        headers=market.creator.headers,
    )
    assert response.status_code == 201, response.text
    issued = response.json()
    host_did = node.home.config.creator_did
    worker = node.home.worker_public_key
    claims = verify_capability(
        issued["token"], coordinator_key(market), audience=host_did, worker_key=worker
    )
    assert claims.subject == claims.audience == issued["host_did"] == host_did
    assert claims.worker_jkt == issued["worker_jkt"] == jwk_thumbprint(worker)
    host = market.client.get(f"/v1/hosts/{host_did}", headers=market.creator.headers).json()
    assert host["worker_jkt"] == issued["worker_jkt"]
    assert host["worker_did"] == worker.did
    assert host["insecure"] is True
    assert claims.jti == issued["jti"]
    assert claims.expires_at == datetime.fromisoformat(issued["expires_at"])
    assert claims.expires_at - claims.issued_at == timedelta(
        seconds=market.coordinator.config.token_ttl_seconds
    )
    assert claims.insecure_attestation is issued["insecure_attestation"] is True
    assert claims.scope.job_id == job["id"]
    assert claims.scope.dataset_digest == job["datasets"][0]["manifest_digest"]
    assert claims.scope.operation == "train"
    assert claims.scope.rounds == 3
    assert Decimal(claims.scope.epsilon) == Decimal("1.0")
    assert Decimal(claims.scope.delta) == Decimal("1e-5")
    # Bound: the token is worthless to another worker key or another host.
    with pytest.raises(CapabilityError, match="confirmation"):
        verify_capability(
            issued["token"],
            coordinator_key(market),
            audience=host_did,
            worker_key=SigningKey.generate().public_key,
        )
    with pytest.raises(CapabilityError, match="audience"):
        verify_capability(
            issued["token"],
            coordinator_key(market),
            audience=SigningKey.generate().public_key.did,
            worker_key=worker,
        )


def test_token_refused_for_a_draft_job(market: Marketplace) -> None:
    job = market.create_job()
    response = market.client.post(
        f"/v1/jobs/{job['id']}/tokens",
        json={"dataset_id": market.node.dataset_id},
        headers=market.creator.headers,
    )
    problem(response, 409, None, "draft")


def test_token_refused_for_a_host_without_attested_worker(
    market: Marketplace, tmp_path: Path
) -> None:
    bare = add_node(market, tmp_path / "more", "bare", register=False)
    job = funded_job(market, job_body(market, datasets=[target(bare.dataset_id)]))
    response = market.client.post(
        f"/v1/jobs/{job['id']}/tokens",
        json={"dataset_id": bare.dataset_id},
        headers=market.creator.headers,
    )
    problem(response, 422, "dataset_id", "no attested worker")
    other = market.client.post(
        f"/v1/jobs/{job['id']}/tokens",
        json={"dataset_id": market.node.dataset_id},
        headers=market.creator.headers,
    )
    problem(other, 404)


def test_development_mode_is_shown_and_dev_evidence_refused_without_it(tmp_path: Path) -> None:
    coordinator = make_coordinator(tmp_path / "coordinator", dev_mode=False)
    client = TestClient(create_app(coordinator))
    try:
        health = client.get("/healthz").json()
        assert (health["status"], health["development_mode"]) == ("ok", False)
        assert client.get("/v1/info").json()["development_mode"] is False
        admin = bootstrap_admin(coordinator)
        creator = create_party(client, admin, "alice", "creator")
        buyer = create_party(client, admin, "bob", "buyer")
        node = make_node(tmp_path / "nodes", "alice-node")
        proof = sign_identity_link(
            node.home.creator_key(),
            account_id=creator.account_id,
            audience=coordinator.config.audience,
        )
        linked = client.post(
            "/v1/identities", json={"proof": proof.to_dict()}, headers=creator.headers
        )
        assert linked.status_code == 201, linked.text
        host_did = node.home.config.creator_did
        registered = client.post(
            "/v1/hosts",
            json={"host_did": host_did, "evidence": json.loads(node.evidence.to_json())},
            headers=creator.headers,
        )
        problem(registered, 422, "evidence", "development mode")
        problem(client.get(f"/v1/hosts/{host_did}", headers=creator.headers), 404)
        listing = publish(client, creator, node)
        assert listing["development_mode"] is False
        spec = {"datasets": [target(node.dataset_id)], "model": "mlp", "rounds": 3}
        body = {**spec, "budget": {"amount": "10.00", "currency": "USD"}}
        job = client.post("/v1/jobs", json=body, headers=buyer.headers)
        assert job.status_code == 201, job.text
        assert job.json()["development_mode"] is False
        assert client.post(f"/v1/jobs/{job.json()['id']}/fund", headers=buyer.headers).is_success
        token = client.post(
            f"/v1/jobs/{job.json()['id']}/tokens",
            json={"dataset_id": node.dataset_id},
            headers=creator.headers,
        )
        problem(token, 422, "dataset_id", "no attested worker")
    finally:
        client.close()
        coordinator.close()


def test_development_mode_is_shown_when_on(market: Marketplace) -> None:
    health = market.client.get("/healthz").json()
    assert (health["status"], health["development_mode"]) == ("ok", True)
    assert info(market)["development_mode"] is True
    listing = market.client.get("/v1/catalog", headers=market.buyer.headers).json()["items"][0]
    assert listing["development_mode"] is True
    assert market.create_job()["development_mode"] is True


# -- identity links ----------------------------------------------------------------------

LinkProof = Callable[[SigningKey, str, str], Envelope]


def _resign(key: SigningKey, account: str, audience: str, **changes: Any) -> Envelope:
    """A proof whose payload fields are changed, signed by ``key``."""
    good = sign_identity_link(key, account_id=account, audience=audience)
    payload = {**json.loads(good.payload), **changes}
    return sign_envelope(canonical_json(payload), IDENTITY_LINK_PAYLOAD_TYPE, [key])


LINK_REFUSALS: dict[str, tuple[LinkProof, int, str | None, str]] = {
    "for-another-account": (
        lambda key, account, audience: sign_identity_link(
            key, account_id="acct_" + "1" * 26, audience=audience
        ),
        422,
        "proof.account",
        "not yours",
    ),
    "for-another-coordinator": (
        lambda key, account, audience: sign_identity_link(
            key, account_id=account, audience="tallystick-coordinator:elsewhere"
        ),
        422,
        "proof.audience",
        "not this coordinator",
    ),
    "stale": (
        lambda key, account, audience: sign_identity_link(
            key, account_id=account, audience=audience, now=datetime.now(UTC) - timedelta(hours=1)
        ),
        422,
        "proof.issued_at",
        "make a new one",
    ),
    "from-the-future": (
        lambda key, account, audience: sign_identity_link(
            key, account_id=account, audience=audience, now=datetime.now(UTC) + timedelta(hours=1)
        ),
        422,
        "proof.issued_at",
        "make a new one",
    ),
    "signed-by-another-key": (
        lambda key, account, audience: sign_envelope(
            sign_identity_link(key, account_id=account, audience=audience).payload,
            IDENTITY_LINK_PAYLOAD_TYPE,
            [SigningKey.generate()],
        ),
        422,
        "proof",
        "not signed by",
    ),
    "names-another-did": (
        lambda key, account, audience: _resign(
            key, account, audience, did=SigningKey.generate().public_key.did
        ),
        422,
        "proof",
        "not signed by",
    ),
    "wrong-payload-type": (
        lambda key, account, audience: sign_envelope(
            sign_identity_link(key, account_id=account, audience=audience).payload,
            "application/json",
            [key],
        ),
        422,
        "proof",
        "payloadType",
    ),
    "extra-payload-field": (
        lambda key, account, audience: _resign(key, account, audience, role="admin"),
        422,
        "proof",
        "exactly",
    ),
    "issued-at-garbled": (
        lambda key, account, audience: _resign(key, account, audience, issued_at="yesterday"),
        422,
        "proof.issued_at",
        "",
    ),
}


@pytest.mark.parametrize("case", sorted(LINK_REFUSALS))
def test_identity_link_refusals(local_market: Marketplace, tmp_path: Path, case: str) -> None:
    market = local_market
    newcomer = create_party(market.client, market.admin.api_key, "dave", "creator")
    node = make_node(tmp_path / "more", "dave-node")
    make_proof, status, field, says = LINK_REFUSALS[case]
    proof = make_proof(node.home.creator_key(), newcomer.account_id, info(market)["audience"])
    response = market.client.post(
        "/v1/identities", json={"proof": proof.to_dict()}, headers=newcomer.headers
    )
    problem(response, status, field, says)
    me = market.client.get("/v1/accounts/me", headers=newcomer.headers).json()
    assert me["identities"] == []


def test_identity_link_is_per_creator(local_market: Marketplace) -> None:
    market = local_market
    audience = info(market)["audience"]
    key = market.node.home.creator_key()
    # Linking alice's DID again to alice is a no-op (200); to another creator, a conflict.
    again = sign_identity_link(key, account_id=market.creator.account_id, audience=audience)
    response = market.client.post(
        "/v1/identities", json={"proof": again.to_dict()}, headers=market.creator.headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["did"] == market.node.home.config.creator_did
    assert response.json()["account_id"] == market.creator.account_id
    thief = create_party(market.client, market.admin.api_key, "mallory", "creator")
    stolen = sign_identity_link(key, account_id=thief.account_id, audience=audience)
    response = market.client.post(
        "/v1/identities", json={"proof": stolen.to_dict()}, headers=thief.headers
    )
    problem(response, 409, None, "another account")
    me = market.client.get("/v1/accounts/me", headers=thief.headers).json()
    assert me["identities"] == []


# -- timestamps --------------------------------------------------------------------------


def test_every_timestamp_is_utc_with_its_offset(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Times are aware UTC whatever the backend and its session zone, and a record reads
    the same whether it was just written or read back."""
    monkeypatch.setenv("PGTZ", "Asia/Tokyo")  # libpq: the session's time zone
    market = build_marketplace(tmp_path, database_url=database_url)
    try:
        job = market.create_job()
        client = market.client
        host = market.node.home.config.creator_did
        reads = {
            "listing": client.get("/v1/catalog", headers=market.buyer.headers).json()["items"],
            "job": client.get(f"/v1/jobs/{job['id']}", headers=market.buyer.headers).json(),
            "me": client.get("/v1/accounts/me", headers=market.creator.headers).json(),
            "host": client.get(f"/v1/hosts/{host}", headers=market.creator.headers).json(),
            "keys": client.get(
                f"/v1/accounts/{market.buyer.account_id}/keys", headers=market.buyer.headers
            ).json(),
        }
        stamps: list[tuple[str, str]] = []

        def collect(where: str, value: Any) -> None:
            if isinstance(value, dict):
                for name, item in value.items():
                    if name.endswith("_at") or name in ("at", "evidence_time"):
                        if item is not None:
                            stamps.append((f"{where}.{name}", item))
                    else:
                        collect(f"{where}.{name}", item)
            elif isinstance(value, list):
                for position, item in enumerate(value):
                    collect(f"{where}[{position}]", item)

        collect("", reads)
        assert len(stamps) >= 8
        not_utc = [
            (where, text)
            for where, text in stamps
            if datetime.fromisoformat(text).utcoffset() != timedelta(0)
        ]
        assert not_utc == []
        assert reads["job"]["created_at"] == job["created_at"]
        assert reads["job"]["events"] == job["events"]
    finally:
        market.client.close()
        market.coordinator.close()
