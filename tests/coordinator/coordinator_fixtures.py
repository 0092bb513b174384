"""Builders for coordinator tests: a migrated coordinator, data-host nodes with real
datasets, and a marketplace with an admin, a creator (with a linked identity, a registered
host and a published dataset), a buyer and an auditor, all set up through the HTTP API."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from coordinator.api.app import create_app
from coordinator.home import init_coordinator_home
from coordinator.identity import sign_identity_link
from coordinator.service import Coordinator, bootstrap_admin, open_coordinator, prepare_database
from data_host.attestation import EvidenceKind, produce_evidence, store_evidence
from data_host.home import NodeHome, init_home
from data_host.ingest import ingest_dataset
from data_host.terms import DatasetTerms
from provenance.attestation import Evidence


def headers(api_key: str) -> dict[str, str]:
    """The Authorization header for ``api_key``."""
    return {"Authorization": f"Bearer {api_key}"}


def make_coordinator(
    root: Path, *, dev_mode: bool = True, database_url: str | None = None, fee_bps: int = 1000
) -> Coordinator:
    """A new coordinator home at ``root`` on a migrated database (SQLite in the home by
    default)."""
    home = init_coordinator_home(
        root, "test", dev_mode=dev_mode, database_url=database_url, platform_fee_bps=fee_bps
    )
    prepare_database(home.database_url)
    return open_coordinator(home)


def write_tabular_csv(path: Path, rows: int = 400) -> Path:
    """A small numeric CSV with a binary label."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["x1", "x2", "label"])
        for i in range(rows):
            writer.writerow([f"{i * 0.1:.1f}", i % 7, i % 2])
    return path


@dataclass
class Node:
    """A data-host node with one ingested dataset and stored dev evidence."""

    home: NodeHome
    dataset_id: str
    envelope: dict[str, Any]
    evidence: Evidence


def make_node(
    root: Path,
    name: str,
    *,
    rows: int = 400,
    price: str = "0.001",
    currency: str = "USD",
    lifetime_epsilon: float = 10.0,
    max_epsilon_per_job: float | None = 3.0,
    allowed_uses: tuple[str, ...] = ("train",),
) -> Node:
    """A node at ``root`` with a CSV dataset of ``rows`` rows priced at ``price``."""
    home = init_home(root / name, name)
    evidence = produce_evidence(home, EvidenceKind.DEV)
    store_evidence(home, evidence)
    data = write_tabular_csv(root / f"{name}.csv", rows)
    result = ingest_dataset(
        home,
        data,
        DatasetTerms(
            title=f"{name} sensor readings",
            license="CC-BY-4.0",
            price_per_sample=Decimal(price),
            currency=currency,
            lifetime_epsilon=lifetime_epsilon,
            max_epsilon_per_job=max_epsilon_per_job,
            allowed_uses=allowed_uses,
        ),
    )
    return Node(
        home,
        result.dataset.row.id,
        result.dataset.signed.envelope.to_dict(),
        evidence,
    )


@dataclass
class Party:
    """An account and its API key."""

    account_id: str
    api_key: str

    @property
    def headers(self) -> dict[str, str]:
        """Its Authorization header."""
        return headers(self.api_key)


def create_party(client: TestClient, admin_key: str, name: str, role: str) -> Party:
    """Create an account through the API."""
    response = client.post(
        "/v1/accounts", json={"name": name, "role": role}, headers=headers(admin_key)
    )
    assert response.status_code == 201, response.text
    body = response.json()
    return Party(body["account"]["id"], body["api_key"])


def link_and_register(
    client: TestClient, coordinator: Coordinator, creator: Party, node: Node
) -> None:
    """Link the node's creator DID to ``creator`` and register its attested worker."""
    proof = sign_identity_link(
        node.home.creator_key(), account_id=creator.account_id, audience=coordinator.config.audience
    )
    response = client.post(
        "/v1/identities", json={"proof": proof.to_dict()}, headers=creator.headers
    )
    assert response.status_code in (200, 201), response.text
    response = client.post(
        "/v1/hosts",
        json={
            "host_did": node.home.config.creator_did,
            "evidence": json.loads(node.evidence.to_json()),
        },
        headers=creator.headers,
    )
    assert response.status_code == 201, response.text


def publish(client: TestClient, creator: Party, node: Node) -> dict[str, Any]:
    """Publish the node's manifest; returns the listing."""
    response = client.post("/v1/catalog", json={"envelope": node.envelope}, headers=creator.headers)
    assert response.status_code == 201, response.text
    listing: dict[str, Any] = response.json()
    return listing


@dataclass
class Marketplace:
    """A coordinator with every role and one published dataset."""

    coordinator: Coordinator
    client: TestClient
    admin: Party
    creator: Party
    buyer: Party
    auditor: Party
    node: Node

    def job_spec(self, **overrides: Any) -> dict[str, Any]:
        """A valid job spec on the published dataset."""
        spec: dict[str, Any] = {
            "datasets": [{"dataset_id": self.node.dataset_id, "target_epsilon": "1.0"}],
            "model": "mlp",
            "rounds": 3,
        }
        spec.update(overrides)
        return spec

    def create_job(self, budget: str = "10.00") -> dict[str, Any]:
        """A draft job by the buyer."""
        body = {**self.job_spec(), "budget": {"amount": budget, "currency": "USD"}}
        response = self.client.post("/v1/jobs", json=body, headers=self.buyer.headers)
        assert response.status_code == 201, response.text
        job: dict[str, Any] = response.json()
        return job


def build_marketplace(
    root: Path, *, database_url: str | None = None, dev_mode: bool = True
) -> Marketplace:
    """Everything a role test needs, set up through the API. Close ``.coordinator`` after."""
    coordinator = make_coordinator(
        root / "coordinator", dev_mode=dev_mode, database_url=database_url
    )
    admin = Party("", bootstrap_admin(coordinator))
    client = TestClient(create_app(coordinator))
    creator = create_party(client, admin.api_key, "alice", "creator")
    buyer = create_party(client, admin.api_key, "bob", "buyer")
    auditor = create_party(client, admin.api_key, "carol", "auditor")
    node = make_node(root / "nodes", "alice-node")
    link_and_register(client, coordinator, creator, node)
    publish(client, creator, node)
    return Marketplace(coordinator, client, admin, creator, buyer, auditor, node)
