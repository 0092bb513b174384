"""A job trained end to end on real processes: a coordinator with its SuperLink, four data
hosts each running ``tally host up`` (a real SuperNode), DP training with Opacus, receipts,
round proofs in the log. Two hosts refuse every round (a dataset revoked on its node, a
dataset whose node-side lifetime ε is already committed); the job goes on without them,
every proof names why they were dropped, and nothing is metered for them."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from clients.local_stack import LocalStack, digits_rows, write_digits_csv
from clients.sdk import spec_from_options
from data_host.registry import DatasetRegistry
from privacy.budget import Mechanism, PrivacyBudgetLedger, noise_for_target
from provenance.dsse import Envelope
from provenance.keys import PublicKey
from provenance.statement import verify_statement
from provenance.usage import ROUND_PROOF_PREDICATE, USAGE_RECEIPT_PREDICATE, RoundProof

pytestmark = pytest.mark.slow
ROWS_PER_HOST = 360


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    root: Path = tmp_path_factory.mktemp("training")
    features, labels = digits_rows()
    stack = LocalStack(root).start()
    try:
        hosts = []
        for number in range(4):
            part = slice(number * ROWS_PER_HOST, (number + 1) * ROWS_PER_HOST)
            data = write_digits_csv(
                root / "data" / f"h{number}", features[part], labels[part], contact=number == 1
            )
            # The last node's dataset has a lifetime cap of 5; the node commits 4.9 of it
            # to a study of its own, which the coordinator knows nothing of.
            lifetime = 5.0 if number == 3 else 10.0
            hosts.append(stack.add_host(f"host-{number}", data, lifetime_epsilon=lifetime))
        good, revoked, exhausted = hosts[:2], hosts[2], hosts[3]
        DatasetRegistry(revoked.home.engine).revoke(revoked.dataset_id, "consent withdrawn")
        ledger = PrivacyBudgetLedger(exhausted.home.engine)
        local_sigma = noise_for_target(4.9, 1e-5, 0.1, 100)
        ledger.reserve(exhausted.dataset_id, "local-study", Mechanism(local_sigma, 0.1, 100))
        for host in hosts:
            stack.start_node(host)
        buyer = stack.create_account("buyer", "buyer")
        with stack.client(buyer["api_key"]) as client:
            spec = spec_from_options(
                datasets=[f"{host.dataset_id}:2.0" for host in hosts],
                model="logistic-regression",
                rounds=3,
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
            client.start_job(job["id"], node_wait_seconds=60, round_timeout_seconds=180)
        run = stack.wait_for_job(buyer["api_key"], job["id"], timeout=600)
        with stack.client(buyer["api_key"]) as client:
            model = client.job_model(job["id"]) if run["status"] == "completed" else None
            entries = {
                index: client.log_entry(index)
                for summary in run["rounds"]
                for index in [summary["proof_log_index"], *summary["receipt_log_indexes"]]
            }
            info = client.info()
        yield {
            "run": run,
            "model": model,
            "entries": entries,
            "info": info,
            "good": good,
            "revoked": revoked,
            "exhausted": exhausted,
            "labels": labels,
        }
    finally:
        stack.close()


def test_the_job_completes_and_beats_the_majority_class(trained: dict[str, object]) -> None:
    run = trained["run"]
    assert isinstance(run, dict)
    assert run["status"] == "completed", run["status_reason"]
    assert [summary["round"] for summary in run["rounds"]] == [1, 2, 3]
    model = trained["model"]
    assert isinstance(model, dict)
    labels = trained["labels"]
    assert isinstance(labels, np.ndarray)
    majority = np.bincount(labels).max() / len(labels)
    accuracy = float(model["card"]["evaluation"]["accuracy"])
    assert accuracy > majority + 0.3, (accuracy, majority)
    assert [proof["round"] for proof in model["card"]["proofs"]] == [1, 2, 3]


def test_refusing_hosts_are_dropped_with_the_reason_and_never_metered(
    trained: dict[str, object],
) -> None:
    run = trained["run"]
    assert isinstance(run, dict)
    revoked = trained["revoked"]
    exhausted = trained["exhausted"]
    good = trained["good"]
    for summary in run["rounds"]:
        reasons = {item["dataset_id"]: item["reason"] for item in summary["rejected"]}
        assert "revoked" in reasons[revoked.dataset_id]  # type: ignore[attr-defined]
        assert "privacy budget" in reasons[exhausted.dataset_id]  # type: ignore[attr-defined]
        accepted = {item["dataset_id"] for item in summary["accepted"]}
        assert accepted == {host.dataset_id for host in good}  # type: ignore[attr-defined]


def test_every_round_proof_and_receipt_in_the_log_verifies(trained: dict[str, object]) -> None:
    run, entries, info = trained["run"], trained["entries"], trained["info"]
    assert isinstance(run, dict)
    assert isinstance(entries, dict)
    assert isinstance(info, dict)
    coordinator = PublicKey.from_did(info["coordinator_did"])
    good = {host.home.config.worker_did for host in trained["good"]}  # type: ignore[attr-defined]
    previous = None
    for summary in run["rounds"]:
        entry = entries[summary["proof_log_index"]]
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
        assert {use.dataset_id for use in proof.metered} == {a.dataset_id for a in proof.accepted}
        assert sum(use.samples for use in proof.metered) == summary["samples"] > 0
        for index in summary["receipt_log_indexes"]:
            receipt = entries[index]
            assert receipt["record"]["type"] == "usage-receipt"
            envelope = Envelope.from_dict(receipt["envelope"])
            keys = [PublicKey.from_did(did) for did in good]
            verify_statement(envelope, keys, predicate_type=USAGE_RECEIPT_PREDICATE)
