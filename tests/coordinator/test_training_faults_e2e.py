"""A job trained end to end on real processes, with every fault the issue names injected.

A coordinator with its SuperLink and seven data hosts, each running ``tally host up`` (a
real SuperNode); DP training with Opacus, receipts, round proofs in the log. The run uses
``fault_app``: the real ServerApp and ClientApp with faults injected per dataset.

- ``good-0``, ``good-1``: honest nodes, one dataset each.
- ``tokens``: an honest node whose datasets get a forged, an expired and a replayed
  capability token from the coordinator side.
- ``refusing``: an honest node with a dataset sent a token for another operation, a
  dataset revoked on the node and one whose node-side lifetime ε is already committed.
- ``liar``: a malicious node that signs a receipt with another key, sends NaN in its
  update and sends an update of the wrong shape (re-signing the receipt over each).
- ``strict``: a node whose app allow-list does not name the fault app.
- ``dying``: a node killed (SIGKILL, the whole process tree) in the middle of round 1.

The job (two rounds: the fewest that show a replay and a node gone for good) goes on
without the bad ones, every proof names why each was dropped, and nothing is metered for
them. Every message starts a fresh ClientApp process (torch and Opacus imported anew), so
this module takes minutes: all faults share one job.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from clients.local_stack import Host, LocalStack, digits_rows, write_digits_csv
from clients.sdk import spec_from_options
from coordinator.accounts import Principal
from coordinator.launch import start_job
from coordinator.training import RunSettings
from data_host.allowlist import AppAllowList, build_fab, fab_hash_of_bytes
from data_host.registry import DatasetRegistry
from privacy.budget import Mechanism, PrivacyBudgetLedger, noise_for_target
from provenance.dsse import Envelope
from provenance.keys import PublicKey
from provenance.statement import verify_statement
from provenance.usage import ROUND_PROOF_PREDICATE, USAGE_RECEIPT_PREDICATE, RoundProof

pytestmark = pytest.mark.slow
FAULT_APP = Path(__file__).parent / "fault_app"
SERVER_FAULTS = ("forged-token", "expired-token", "replayed-token", "out-of-scope-token")
CLIENT_FAULTS = ("other-key-receipt", "nan-update", "wrong-shape-update", "die-in-round-1")
#: The nodes and the roles of their datasets. A SuperNode handles one message at a time,
#: so the faulty datasets are spread over nodes that work in parallel.
NODES = {
    "good-0": ["good-0"],
    "good-1": ["good-1"],
    "tokens": ["forged-token", "expired-token", "replayed-token"],
    "refusing": ["out-of-scope-token", "revoked", "exhausted"],
    "liar": ["other-key-receipt", "nan-update", "wrong-shape-update"],
    "strict": ["strict"],
    "dying": ["die-in-round-1"],
}
GOOD_ROWS = 360
SMALL_ROWS = 90


@dataclass
class Trained:
    """What the fixture ran and what it read back afterwards."""

    run: dict[str, Any]
    model: dict[str, Any] | None
    entries: dict[int, dict[str, Any]]
    coordinator_did: str
    dataset: dict[str, str]  # role -> dataset id
    hosts: dict[str, Host]
    labels: np.ndarray[Any, Any]

    def reasons(self, role: str) -> list[str]:
        """Per round, why ``role``'s dataset was dropped (empty: it was accepted)."""
        dataset_id = self.dataset[role]
        found: list[str] = []
        for summary in self.run["rounds"]:
            accepted = {item["dataset_id"] for item in summary["accepted"]}
            rejected = {item["dataset_id"]: item["reason"] for item in summary["rejected"]}
            assert (dataset_id in accepted) != (dataset_id in rejected), (role, summary)
            found.append(rejected.get(dataset_id, ""))
        return found


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trained]:
    root: Path = tmp_path_factory.mktemp("faults")
    features, labels = digits_rows()
    taken = 0

    def rows(count: int, name: str) -> Path:
        nonlocal taken
        part = slice(taken, taken + count)
        taken += count
        return write_digits_csv(root / "data" / name, features[part], labels[part], contact=False)

    stack = LocalStack(root).start()
    try:
        dataset: dict[str, str] = {}  # role -> dataset id
        hosts: dict[str, Host] = {}  # role -> the host holding that dataset
        for node, roles in NODES.items():
            size = GOOD_ROWS if node.startswith("good") else SMALL_ROWS
            # Lifetime cap 5 for "exhausted": its node commits 4.9 to a study of its own.
            caps = [5.0 if role == "exhausted" else 10.0 for role in roles]
            host = stack.add_host(node, rows(size, roles[0]), lifetime_epsilon=caps[0])
            for role, cap in zip(roles[1:], caps[1:], strict=True):
                stack.add_dataset(host, rows(size, role), lifetime_epsilon=cap)
            for role, dataset_id in zip(roles, host.dataset_ids, strict=True):
                dataset[role], hosts[role] = dataset_id, host

        assert stack.coordinator is not None
        server_faults = {dataset[fault]: fault for fault in SERVER_FAULTS}
        (stack.coordinator.home.root / "faults.json").write_text(json.dumps(server_faults))
        for fault in CLIENT_FAULTS:
            faults_file = hosts[fault].home.root / "faults.json"
            known = json.loads(faults_file.read_text()) if faults_file.exists() else {}
            faults_file.write_text(json.dumps({**known, dataset[fault]: fault}))
        fab_hash = fab_hash_of_bytes(build_fab(FAULT_APP))
        nodes = {id(host): host for host in hosts.values()}.values()
        for host in nodes:
            if host is not hosts["strict"]:
                AppAllowList(host.home.engine).allow(fab_hash, "the fault tests' app")
        DatasetRegistry(hosts["revoked"].home.engine).revoke(
            dataset["revoked"], "consent withdrawn"
        )
        local_sigma = noise_for_target(4.9, 1e-5, 0.1, 100)
        PrivacyBudgetLedger(hosts["exhausted"].home.engine).reserve(
            dataset["exhausted"], "local-study", Mechanism(local_sigma, 0.1, 100)
        )
        for host in nodes:
            stack.start_node(host)

        buyer = stack.create_account("buyer", "buyer")
        with stack.client(buyer["api_key"]) as client:
            spec = spec_from_options(
                datasets=[f"{dataset_id}:2.0" for dataset_id in dataset.values()],
                model="logistic-regression",
                rounds=2,
                local_epochs=2,
                batch_size=32,
                learning_rate="0.5",
                min_hosts=2,
            )
            quote = client.quote(spec)["quote"]
            job = client.create_job(
                spec, str(Decimal(quote["total"].split()[0]) + 1), quote["currency"]
            )
            client.fund_job(job["id"])
        account = buyer["account"]
        start_job(
            stack.coordinator,
            Principal(account["id"], account["name"], "buyer", ""),
            job["id"],
            app_dir=FAULT_APP,
            fab_hash=fab_hash,
            settings=RunSettings(node_wait=60, round_timeout=240),
            superlink=stack.coordinator.superlink,
        )
        run = stack.wait_for_job(buyer["api_key"], job["id"], timeout=900)
        with stack.client(buyer["api_key"]) as client:
            model = client.job_model(job["id"]) if run["status"] == "completed" else None
            entries = {
                index: client.log_entry(index)
                for summary in run["rounds"]
                if "proof_log_index" in summary
                for index in [summary["proof_log_index"], *summary["receipt_log_indexes"]]
            }
            info = client.info()
        yield Trained(run, model, entries, info["coordinator_did"], dataset, hosts, labels)
    finally:
        stack.close()


def test_the_job_completes_and_beats_the_majority_class(trained: Trained) -> None:
    assert trained.run["status"] == "completed", trained.run["status_reason"]
    assert [summary["round"] for summary in trained.run["rounds"]] == [1, 2]
    assert trained.model is not None
    majority = np.bincount(trained.labels).max() / len(trained.labels)
    accuracy = float(trained.model["card"]["evaluation"]["accuracy"])
    assert accuracy > majority + 0.3, (accuracy, majority)
    assert [proof["round"] for proof in trained.model["card"]["proofs"]] == [1, 2]
    # Only datasets the last round aggregated evaluate the model.
    assert trained.model["card"]["evaluation"]["hosts"] == 2


def test_honest_hosts_are_accepted_every_round(trained: Trained) -> None:
    assert trained.reasons("good-0") == ["", ""]
    assert trained.reasons("good-1") == ["", ""]


def test_a_forged_token_is_refused_by_the_node(trained: Trained) -> None:
    for reason in trained.reasons("forged-token"):
        assert "capability token refused" in reason, reason
        assert "signature" in reason, reason


def test_an_expired_token_is_refused_by_the_node(trained: Trained) -> None:
    for reason in trained.reasons("expired-token"):
        assert "expired" in reason, reason


def test_a_replayed_token_is_refused_after_its_first_use(trained: Trained) -> None:
    first, *later = trained.reasons("replayed-token")
    assert first == ""
    for reason in later:
        assert "already used" in reason, reason


def test_an_out_of_scope_token_is_refused_by_the_node(trained: Trained) -> None:
    for reason in trained.reasons("out-of-scope-token"):
        assert "allows 'evaluate', not 'train'" in reason, reason


def test_a_revoked_dataset_refuses_every_round(trained: Trained) -> None:
    for reason in trained.reasons("revoked"):
        assert "revoked" in reason, reason


def test_a_dataset_without_privacy_budget_refuses_every_round(trained: Trained) -> None:
    for reason in trained.reasons("exhausted"):
        assert "privacy budget" in reason, reason


def test_a_receipt_signed_by_another_key_is_dropped(trained: Trained) -> None:
    for reason in trained.reasons("other-key-receipt"):
        assert "signature" in reason, reason


def test_a_nan_update_is_dropped_though_its_receipt_verifies(trained: Trained) -> None:
    for reason in trained.reasons("nan-update"):
        assert "finite" in reason, reason


def test_an_update_of_the_wrong_shape_is_dropped(trained: Trained) -> None:
    for reason in trained.reasons("wrong-shape-update"):
        assert "shape" in reason, reason


def test_an_app_bundle_off_the_allow_list_is_refused(trained: Trained) -> None:
    for reason in trained.reasons("strict"):
        assert "allow-list" in reason, reason


def test_a_node_that_dies_mid_round_is_dropped_and_never_waited_for_again(
    trained: Trained,
) -> None:
    during, after = trained.reasons("die-in-round-1")
    assert "Node Unavailable" in during, during
    assert "left the SuperLink" in after, after


def test_refused_work_never_reached_the_privacy_ledger(trained: Trained) -> None:
    job_id = trained.run["job_id"]

    def rounds_recorded(role: str) -> int:
        ledger = PrivacyBudgetLedger(trained.hosts[role].home.engine)
        return len(ledger.job_rounds(trained.dataset[role], job_id))

    for role in ("forged-token", "expired-token", "out-of-scope-token", "revoked", "exhausted"):
        assert rounds_recorded(role) == 0, role
    assert rounds_recorded("replayed-token") == 1


def test_every_proof_verifies_and_meters_only_accepted_work(trained: Trained) -> None:
    coordinator = PublicKey.from_did(trained.coordinator_did)
    workers = [PublicKey.from_did(host.home.config.worker_did) for host in trained.hosts.values()]
    assert len(trained.run["rounds"]) == 2
    previous = None
    for summary in trained.run["rounds"]:
        entry = trained.entries[summary["proof_log_index"]]
        assert entry["record"]["type"] == "round-proof"
        statement = verify_statement(
            Envelope.from_dict(entry["envelope"]),
            [coordinator],
            predicate_type=ROUND_PROOF_PREDICATE,
        )
        proof = RoundProof.from_statement(statement)
        assert proof.round == summary["round"]
        if previous is not None:
            assert proof.previous_model_digest == previous
        previous = proof.new_model_digest
        accepted = {item.dataset_id for item in proof.accepted}
        rejected = {item.dataset_id for item in proof.rejected}
        assert accepted | rejected == set(trained.dataset.values())
        assert not accepted & rejected
        assert {use.dataset_id for use in proof.metered} == accepted
        assert sum(use.samples for use in proof.metered) == summary["samples"] > 0
        assert len(summary["receipt_log_indexes"]) == len(accepted)
        for index in summary["receipt_log_indexes"]:
            receipt = trained.entries[index]
            assert receipt["record"]["type"] == "usage-receipt"
            envelope = Envelope.from_dict(receipt["envelope"])
            verify_statement(envelope, workers, predicate_type=USAGE_RECEIPT_PREDICATE)
