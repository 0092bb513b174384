"""The coordinator's receipt check: a reply is aggregated only if its receipt verifies and
binds to exactly what was sent; every other reply is rejected with a reason."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest

from coordinator.receipt_check import SentWork, check_reply
from privacy.budget import Mechanism, epsilon_of, format_epsilon
from provenance.keys import SigningKey
from provenance.model_digest import array_layout, arrays_digest
from provenance.statement import sign_statement
from provenance.usage import UsageReceipt, decimal_text

WORKER = SigningKey.from_seed(b"w" * 32)
HOST = SigningKey.from_seed(b"h" * 32)
SIGMA, RATE, STEPS = 1.1, 1 / 16, 32


def _arrays(value: float = 0.5) -> dict[str, np.ndarray[Any, Any]]:
    return {
        "weight": np.full((10, 64), value, dtype=np.float32),
        "bias": np.zeros(10, dtype=np.float32),
    }


def _sent(**changes: Any) -> SentWork:
    base = SentWork(
        job_id="job_" + "a" * 26,
        round=1,
        nonce="n" * 43,
        token_jti="j" * 32,
        dataset_id="ds_" + "b" * 26,
        manifest_digest="c" * 64,
        host_did=HOST.public_key.did,
        worker_key=WORKER.public_key,
        evidence_digest="d" * 64,
        base_model_digest=arrays_digest(_arrays(0.0)),
        layout=array_layout(_arrays()),
        target_epsilon="5.0",
        delta="0.00001",
        train_rows=512,
    )
    return dataclasses.replace(base, **changes)


def _receipt(
    sent: SentWork, update: dict[str, np.ndarray[Any, Any]], **changes: Any
) -> UsageReceipt:
    epsilon = format_epsilon(epsilon_of([Mechanism(SIGMA, RATE, STEPS)], 1e-5))
    receipt = UsageReceipt(
        job_id=sent.job_id,
        round=sent.round,
        nonce=sent.nonce,
        dataset_id=sent.dataset_id,
        dataset_manifest_digest=sent.manifest_digest,
        host_did=sent.host_did,
        worker_did=sent.worker_key.did,
        token_jti=sent.token_jti,
        attestation_evidence_digest=sent.evidence_digest,
        base_model_digest=sent.base_model_digest,
        update_digest=arrays_digest(update),
        samples_used=1020,
        steps=STEPS,
        noise_multiplier=decimal_text(SIGMA),
        sample_rate=decimal_text(RATE),
        max_grad_norm="1.0",
        accountant="rdp",
        grad_sample_mode="ghost",
        epsilon_round=epsilon,
        epsilon_total=epsilon,
        delta=sent.delta,
        metrics={"train_loss": "0.5", "eval_loss": "0.6", "eval_accuracy": "0.7"},
    )
    return dataclasses.replace(receipt, **changes)


def _envelope(receipt: UsageReceipt, key: SigningKey = WORKER) -> bytes:
    return sign_statement(receipt.to_statement(), [key]).to_json()


def test_a_receipt_bound_to_what_was_sent_is_accepted() -> None:
    sent, update = _sent(), _arrays()
    verdict = check_reply(sent, _envelope(_receipt(sent, update)), update)
    assert verdict.accepted, verdict.reason
    assert verdict.receipt is not None
    assert verdict.receipt.samples_used == 1020
    assert len(verdict.receipt_digest) == 64


def test_a_receipt_signed_by_another_key_is_rejected() -> None:
    sent, update = _sent(), _arrays()
    verdict = check_reply(sent, _envelope(_receipt(sent, update), HOST), update)
    assert not verdict.accepted
    assert "attested worker key" in verdict.reason


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("nonce", "x" * 43, "nonce"),
        ("token_jti", "k" * 32, "token_jti"),
        ("round", 2, "round"),
        ("dataset_manifest_digest", "e" * 64, "dataset_manifest_digest"),
        ("base_model_digest", "f" * 64, "base_model_digest"),
        ("attestation_evidence_digest", "0" * 64, "attestation_evidence_digest"),
    ],
)
def test_a_receipt_for_other_work_is_rejected_naming_the_field(
    field: str, value: Any, named: str
) -> None:
    sent, update = _sent(), _arrays()
    verdict = check_reply(sent, _envelope(_receipt(sent, update, **{field: value})), update)
    assert not verdict.accepted
    assert named in verdict.reason


def test_an_update_that_is_not_the_receipts_subject_is_rejected() -> None:
    sent = _sent()
    verdict = check_reply(sent, _envelope(_receipt(sent, _arrays())), _arrays(0.25))
    assert not verdict.accepted
    assert "digest" in verdict.reason


def test_nan_and_wrong_shapes_are_rejected_even_with_a_matching_signed_receipt() -> None:
    sent = _sent()
    nan = _arrays()
    nan["weight"][0, 0] = np.nan
    verdict = check_reply(sent, _envelope(_receipt(sent, nan)), nan)
    assert not verdict.accepted
    assert "NaN or infinite" in verdict.reason
    wide = {"weight": np.zeros((10, 65), np.float32), "bias": np.zeros(10, np.float32)}
    verdict = check_reply(sent, _envelope(_receipt(sent, wide)), wide)
    assert not verdict.accepted
    assert "shape" in verdict.reason


def test_privacy_claims_that_do_not_follow_from_the_mechanism_are_rejected() -> None:
    sent, update = _sent(), _arrays()
    over = _receipt(sent, update, epsilon_total="5.5")
    assert "over the job's target" in check_reply(sent, _envelope(over), update).reason
    wrong = _receipt(sent, update, epsilon_round="0.01")
    assert "its mechanism gives" in check_reply(sent, _envelope(wrong), update).reason
    inflated = _receipt(sent, update, samples_used=5000)
    assert "claims 5000 samples" in check_reply(sent, _envelope(inflated), update).reason
    changed = _sent(mechanism=(2.0, RATE))
    assert (
        "changed within the job"
        in check_reply(changed, _envelope(_receipt(changed, update)), update).reason
    )


def test_missing_oversized_or_garbled_receipts_are_rejected_without_raising() -> None:
    sent, update = _sent(), _arrays()
    assert "no usage receipt" in check_reply(sent, None, update).reason
    assert "limit" in check_reply(sent, b"{" * 70_000, update).reason
    assert "malformed" in check_reply(sent, b"not json", update).reason
    assert "no update" in check_reply(sent, _envelope(_receipt(sent, update)), None).reason
