"""A dataset whose signed terms split its royalty between several payees.

At publish every payee DID must be linked to an account, else the manifest is refused
(naming the payee's field) and nothing is listed or logged; a listed split shows in the
listing with the accounts it resolved to; training builds each dataset's ``Royalty`` from
its listing, and a round settles 6000/4000 with the rounding leftover to the stated party.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
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
    write_tabular_csv,
)
from sqlmodel import Session, select
from typer.testing import CliRunner

import clients.cli.catalog as catalog_cli
from billing.ledger import AccountKind, account_id, balance
from billing.settlement import MeteredLine, Payee, Royalty, hold_account, settle_round
from clients.cli.main import app
from coordinator.database import writing
from coordinator.identity import sign_identity_link
from coordinator.royalties import listing_royalty
from coordinator.tables import Job, Listing
from coordinator.training import load_assignments
from data_host.attestation import EvidenceKind, produce_evidence, store_evidence
from data_host.home import init_home
from data_host.ingest import ingest_dataset
from data_host.terms import DatasetTerms
from provenance.keys import SigningKey


@pytest.fixture
def market(tmp_path: Path, database_url: str) -> Iterator[Marketplace]:
    built = build_marketplace(tmp_path, database_url=database_url)
    yield built
    built.client.close()
    built.coordinator.close()


def _link(market: Marketplace, party: Party, key: SigningKey) -> None:
    proof = sign_identity_link(
        key, account_id=party.account_id, audience=market.coordinator.config.audience
    )
    response = market.client.post(
        "/v1/identities", json={"proof": proof.to_dict()}, headers=party.headers
    )
    assert response.status_code in (200, 201), response.text


def _label(market: Marketplace, name: str = "label") -> tuple[Party, SigningKey]:
    """Another creator account with a linked DID of its own."""
    party = create_party(market.client, market.admin.api_key, name, "creator")
    key = SigningKey.generate()
    _link(market, party, key)
    return party, key


def _split_node(
    root: Path, name: str, others: list[tuple[str, int]], *, own_share: int, remainder: str
) -> Node:
    """A node whose dataset pays ``own_share`` bps to its own creator DID and the rest to
    ``others``; ``remainder`` is ``"own"`` or one of the other DIDs."""
    home = init_home(root / name, name)
    evidence = produce_evidence(home, EvidenceKind.DEV)
    store_evidence(home, evidence)
    own = home.config.creator_did
    result = ingest_dataset(
        home,
        write_tabular_csv(root / f"{name}.csv", 400),
        DatasetTerms(
            title=f"{name} readings",
            license="CC-BY-4.0",
            price_per_sample=Decimal("0.01"),
            currency="USD",
            max_epsilon_per_job=3.0,
            royalties=((own, own_share), *others),
            royalty_remainder_to=own if remainder == "own" else remainder,
        ),
    )
    return Node(home, result.dataset.row.id, result.dataset.signed.envelope.to_dict(), evidence)


def _log_size(market: Marketplace) -> int:
    return market.coordinator.log.size


def _listed_ids(market: Marketplace) -> list[str]:
    body = market.client.get("/v1/catalog", headers=market.buyer.headers).json()
    return [item["dataset_id"] for item in body["items"]]


def test_a_split_is_listed_with_the_accounts_it_pays(market: Marketplace, tmp_path: Path) -> None:
    label, label_key = _label(market)
    label_did = label_key.public_key.did
    node = _split_node(tmp_path, "duo", [(label_did, 4000)], own_share=6000, remainder=label_did)
    link_and_register(market.client, market.coordinator, market.creator, node)
    response = market.client.post(
        "/v1/catalog", json={"envelope": node.envelope}, headers=market.creator.headers
    )
    assert response.status_code == 201, response.text
    expected = {
        "payees": [
            {
                "account_id": market.creator.account_id,
                "did": node.home.config.creator_did,
                "share_bps": 6000,
            },
            {"account_id": label.account_id, "did": label_did, "share_bps": 4000},
        ],
        "remainder_to": label.account_id,
    }
    assert response.json()["royalties"] == expected
    detail = market.client.get(f"/v1/catalog/{node.dataset_id}", headers=market.buyer.headers)
    assert detail.json()["listing"]["royalties"] == expected
    [found] = [
        item
        for item in market.client.get("/v1/catalog", headers=market.buyer.headers).json()["items"]
        if item["dataset_id"] == node.dataset_id
    ]
    assert found["royalties"] == expected
    # A listing without a split shows none and pays its account alone.
    plain = market.client.get(f"/v1/catalog/{market.node.dataset_id}", headers=market.buyer.headers)
    assert plain.json()["listing"]["royalties"] is None
    with Session(market.coordinator.engine) as session:
        row = session.exec(select(Listing).where(Listing.dataset_id == node.dataset_id)).one()
        assert json.loads(row.royalties or "") == expected
        assert listing_royalty(row) == Royalty(
            (Payee(market.creator.account_id, 6000), Payee(label.account_id, 4000)),
            label.account_id,
        )
        sole = session.exec(
            select(Listing).where(Listing.dataset_id == market.node.dataset_id)
        ).one()
        assert sole.royalties is None
        assert listing_royalty(sole) == Royalty.sole(market.creator.account_id)


def test_an_unlinked_payee_is_refused_naming_it_and_nothing_is_listed_or_logged(
    market: Marketplace, tmp_path: Path
) -> None:
    _, linked = _label(market)
    stranger = SigningKey.generate()
    node = _split_node(
        tmp_path,
        "trio",
        [(linked.public_key.did, 3000), (stranger.public_key.did, 1000)],
        own_share=6000,
        remainder="own",
    )
    link_and_register(market.client, market.coordinator, market.creator, node)
    before = _log_size(market)
    response = market.client.post(
        "/v1/catalog", json={"envelope": node.envelope}, headers=market.creator.headers
    )
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["field"] == "price.royalties.payees[2].did"
    assert stranger.public_key.did in body["detail"]
    assert "not linked to any account" in body["detail"]
    assert _log_size(market) == before
    assert _listed_ids(market) == [market.node.dataset_id]
    with Session(market.coordinator.engine) as session:
        stored = session.exec(select(Listing).where(Listing.dataset_id == node.dataset_id))
        assert stored.all() == []
    # Once its holder links that DID, the very same signed manifest is accepted.
    holder = create_party(market.client, market.admin.api_key, "stranger", "creator")
    _link(market, holder, stranger)
    again = market.client.post(
        "/v1/catalog", json={"envelope": node.envelope}, headers=market.creator.headers
    )
    assert again.status_code == 201, again.text
    assert again.json()["royalties"]["payees"][2]["account_id"] == holder.account_id
    assert _log_size(market) == before + 1


def test_two_payee_dids_of_one_account_are_refused(market: Marketplace, tmp_path: Path) -> None:
    label, first = _label(market)
    second = SigningKey.generate()
    _link(market, label, second)
    node = _split_node(
        tmp_path,
        "twice",
        [(first.public_key.did, 2000), (second.public_key.did, 2000)],
        own_share=6000,
        remainder="own",
    )
    link_and_register(market.client, market.coordinator, market.creator, node)
    before = _log_size(market)
    response = market.client.post(
        "/v1/catalog", json={"envelope": node.envelope}, headers=market.creator.headers
    )
    assert response.status_code == 422, response.text
    assert response.json()["field"] == "price.royalties.payees[2].did"
    assert label.account_id in response.json()["detail"]
    assert _log_size(market) == before
    assert _listed_ids(market) == [market.node.dataset_id]


def _payable(session: Session, party: Party) -> int:
    return balance(session, account_id(AccountKind.PAYABLE, party.account_id, "USD")).posted


def test_a_round_pays_the_split_with_the_leftover_to_the_stated_party(
    market: Marketplace, tmp_path: Path
) -> None:
    label, label_key = _label(market)
    label_did = label_key.public_key.did
    node = _split_node(tmp_path, "duo", [(label_did, 4000)], own_share=6000, remainder=label_did)
    link_and_register(market.client, market.coordinator, market.creator, node)
    response = market.client.post(
        "/v1/catalog", json={"envelope": node.envelope}, headers=market.creator.headers
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = {
        "datasets": [{"dataset_id": node.dataset_id, "target_epsilon": "1.0"}],
        "model": "mlp",
        "rounds": 3,
        "budget": {"amount": "50.00", "currency": "USD"},
    }
    job = market.client.post("/v1/jobs", json=body, headers=market.buyer.headers)
    assert job.status_code == 201, job.text
    job_id = job.json()["id"]
    funded = market.client.post(f"/v1/jobs/{job_id}/fund", headers=market.buyer.headers)
    assert funded.status_code == 200, funded.text

    with writing(market.coordinator.engine) as session:
        stored = session.get(Job, job_id)
        assert stored is not None
        # The training loop's view of the job: each dataset paid by its listing's split.
        [assignment] = load_assignments(session, stored)
        assert assignment.royalty == Royalty(
            (Payee(market.creator.account_id, 6000), Payee(label.account_id, 4000)),
            label.account_id,
        )
        held = balance(session, hold_account(job_id, "USD")).posted
        # 377 samples at 0.01 USD = 377 cents: 60% is 226.2 and 40% is 150.8, each
        # rounded down (226 + 150), and the 1 cent left over goes to the label.
        settlement = settle_round(
            session,
            job_id=job_id,
            round_number=1,
            proof_digest="e" * 64,
            currency="USD",
            lines=[MeteredLine(node.dataset_id, 377, Decimal("0.01"), assignment.royalty)],
            fee_bps=0,
            now=market.coordinator.now(),
        )
    assert settlement.total_minor == 377
    assert settlement.lines[0]["payees"] == [
        {"account": market.creator.account_id, "amount_minor": "226"},
        {"account": label.account_id, "amount_minor": "151"},
    ]
    with Session(market.coordinator.engine) as session:
        assert _payable(session, market.creator) == 226
        assert _payable(session, label) == 151
        assert balance(session, hold_account(job_id, "USD")).posted == held - 377


def test_catalog_show_prints_each_payee(
    market: Marketplace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``tally catalog show`` renders the split the coordinator's API returns."""
    label, label_key = _label(market)
    label_did = label_key.public_key.did
    node = _split_node(tmp_path, "duo", [(label_did, 4000)], own_share=6000, remainder=label_did)
    link_and_register(market.client, market.coordinator, market.creator, node)
    published = market.client.post(
        "/v1/catalog", json={"envelope": node.envelope}, headers=market.creator.headers
    )
    assert published.status_code == 201, published.text

    class Api:
        def get_listing(self, dataset_id: str, version: int | None = None) -> dict[str, Any]:
            response = market.client.get(f"/v1/catalog/{dataset_id}", headers=market.buyer.headers)
            assert response.status_code == 200, response.text
            detail: dict[str, Any] = response.json()
            return detail

    @contextmanager
    def client(url: str, api_key: str | None) -> Iterator[Api]:
        yield Api()

    monkeypatch.setattr(catalog_cli, "coordinator_client", client)
    shown = CliRunner().invoke(
        app, ["catalog", "show", node.dataset_id, "--api-key", "k"], env={"COLUMNS": "300"}
    )
    assert shown.exit_code == 0, shown.output
    lines = [line.strip() for line in shown.output.splitlines() if "royalty" in line]
    assert lines == [
        f"royalty  60% (6000 bps) to {market.creator.account_id} ({node.home.config.creator_did})",
        f"royalty  40% (4000 bps) to {label.account_id} ({label_did}) (takes rounding leftovers)",
    ]
    plain = CliRunner().invoke(
        app, ["catalog", "show", market.node.dataset_id, "--api-key", "k"], env={"COLUMNS": "300"}
    )
    assert plain.exit_code == 0, plain.output
    assert "royalty" not in plain.output
