"""Coordinator-side verification of 1,000 usage receipts in one round.

One round of a job with ``--receipts`` datasets, each on a host with its own worker key
and of its own size (so each runs its own DP mechanism): every reply carries a signed
usage receipt and an update of the registry's logistic regression on 64 features and 10
classes (650 float32 values). In the same process:

- baseline: the cryptographic floor, one Ed25519 signature verification per receipt over
  the same DSSE pre-authentication encoding (``cryptography``, no parsing, no checks);
- ours: ``coordinator.receipt_check.check_reply`` for every reply, as the ServerApp runs it:
  envelope parse within limits, signature by the attested worker key, strict receipt
  parse, bindings to what was sent, the update's names, shapes, finiteness and digest,
  and the DP claims recomputed from the mechanism (RDP accountant). "first round" clears
  the cache of per-mechanism ε first (every mechanism is new, as in a job's first round);
  "later round" keeps it (a job's later rounds repeat each dataset's mechanism).

Wall-clock seconds, best of ``--runs``. The target is at most 0.5 s for 1,000 receipts,
held to by the first round.
Every reply must verify (the script exits 1 otherwise). This script writes nothing.

    python -m benchmarks.bench_receipt_check [--receipts 1000] [--runs 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from benchmarks.timing import best_of, cpu_model
from coordinator.receipt_check import SentWork, _round_epsilon, check_reply
from privacy.budget import Mechanism, epsilon_of, format_epsilon
from provenance.dsse import Envelope, pae
from provenance.keys import SigningKey
from provenance.model_digest import array_layout, arrays_digest
from provenance.statement import sign_statement
from provenance.usage import UsageReceipt, decimal_text

TARGET_SECONDS = 0.5
SIGMA, STEPS, BATCH = 1.1, 32, 32


@dataclass
class Reply:
    """One reply as the ServerApp gets it, and what the coordinator sent for it."""

    sent: SentWork
    receipt: bytes
    arrays: dict[str, np.ndarray[Any, Any]]


def _replies(count: int) -> list[Reply]:
    rng = np.random.default_rng(0)
    base = {
        "linear.weight": np.zeros((10, 64), dtype=np.float32),
        "linear.bias": np.zeros(10, dtype=np.float32),
    }
    layout, base_digest = array_layout(base), arrays_digest(base)
    replies = []
    for number in range(count):
        rows = 512 + number
        rate = BATCH / rows
        epsilon = format_epsilon(epsilon_of([Mechanism(SIGMA, rate, STEPS)], 1e-5))
        worker, host = SigningKey.generate(), SigningKey.generate()
        arrays = {name: rng.normal(size=v.shape).astype(np.float32) for name, v in base.items()}
        sent = SentWork(
            job_id="job_" + "a" * 26,
            round=3,
            nonce=f"{number:043d}",
            token_jti=f"{number:032d}",
            dataset_id=f"ds_{number:026d}",
            manifest_digest=f"{number:064x}",
            host_did=host.public_key.did,
            worker_key=worker.public_key,
            evidence_digest=f"{number + 7:064x}",
            base_model_digest=base_digest,
            layout=layout,
            target_epsilon="5.0",
            delta="0.00001",
            train_rows=rows,
            mechanism=(SIGMA, rate),
        )
        receipt = UsageReceipt(
            job_id=sent.job_id,
            round=sent.round,
            nonce=sent.nonce,
            dataset_id=sent.dataset_id,
            dataset_manifest_digest=sent.manifest_digest,
            host_did=sent.host_did,
            worker_did=worker.public_key.did,
            token_jti=sent.token_jti,
            attestation_evidence_digest=sent.evidence_digest,
            base_model_digest=base_digest,
            update_digest=arrays_digest(arrays),
            samples_used=STEPS * BATCH,
            steps=STEPS,
            noise_multiplier=decimal_text(SIGMA),
            sample_rate=decimal_text(rate),
            max_grad_norm="1.0",
            accountant="rdp",
            grad_sample_mode="ghost",
            epsilon_round=epsilon,
            epsilon_total=epsilon,
            delta=sent.delta,
            metrics={"train_loss": "0.5", "eval_loss": "0.6", "eval_accuracy": "0.7"},
        )
        envelope = sign_statement(receipt.to_statement(), [worker])
        replies.append(Reply(sent, envelope.to_json(), arrays))
    return replies


def _floor(replies: list[Reply]) -> list[tuple[Ed25519PublicKey, bytes, bytes]]:
    """What the baseline verifies: (key, signature, signed bytes) per receipt."""
    items = []
    for reply in replies:
        envelope = Envelope.from_json(reply.receipt)
        key = Ed25519PublicKey.from_public_bytes(reply.sent.worker_key.raw)
        signed = pae(envelope.payload_type, envelope.payload)
        items.append((key, envelope.signatures[0].sig, signed))
    return items


def main(argv: list[str] | None = None) -> int:
    """Run both contenders and print the timings and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--receipts", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    replies = _replies(args.receipts)
    floor = _floor(replies)

    def verify_floor() -> None:
        for key, signature, signed in floor:
            key.verify(signature, signed)

    verdicts: list[bool] = []

    def verify_ours() -> None:
        verdicts.clear()
        for reply in replies:
            verdicts.append(check_reply(reply.sent, reply.receipt, reply.arrays).accepted)

    def first_round() -> None:
        _round_epsilon.cache_clear()
        verify_ours()

    baseline = best_of(args.runs, verify_floor)
    cold = best_of(args.runs, first_round)
    warm = best_of(args.runs, verify_ours)
    if not all(verdicts) or len(verdicts) != len(replies):
        first = next(r for r in replies if not check_reply(r.sent, r.receipt, r.arrays).accepted)
        print(check_reply(first.sent, first.receipt, first.arrays).reason, file=sys.stderr)
        return 1
    result = {
        "receipts": args.receipts,
        "cpu": cpu_model(),
        "baseline_ed25519_s": round(baseline.wall_s, 4),
        "first_round_s": round(cold.wall_s, 4),
        "later_round_s": round(warm.wall_s, 4),
        "first_round_ratio": round(cold.wall_s / baseline.wall_s, 2),
        "later_round_ratio": round(warm.wall_s / baseline.wall_s, 2),
        "target_s": TARGET_SECONDS,
        "meets_target": cold.wall_s <= TARGET_SECONDS,
    }
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>22}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
