"""Verifying one data host's reply to one round before its update may be aggregated.

``check_reply`` takes what the coordinator sent (``SentWork``) and what came back (the
receipt envelope's bytes and the update's arrays) and returns a ``Verdict``: accepted,
or rejected with the reason. In order: the envelope parses within limits; it is signed
by the worker key the host attested (and nothing else verifies it); the Statement is a
well-formed usage receipt; it is bound to what was sent (job, round, nonce, token ``jti``,
dataset manifest, host, worker, attestation evidence, the global model it started from);
the update has exactly the global model's array names, shapes and dtype and only finite
values, and its digest is the receipt's subject; the DP mechanism is the one this job
runs on the dataset (same noise multiplier and sample rate every round), ε this round
follows from it, ε so far stays within the token's target, and the samples claimed are
ones that mechanism could have drawn.

This module must never accept a reply whose receipt it could not verify, and never
raise on untrusted input: every failure is a rejection with a reason.
"""

from __future__ import annotations

import hmac
import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.typing import NDArray

from privacy.budget import Mechanism, epsilon_of, format_epsilon
from privacy.errors import PrivacyError
from provenance.canonical import sha256_hex
from provenance.dsse import Envelope
from provenance.errors import ProvenanceError
from provenance.keys import PublicKey
from provenance.model_digest import arrays_digest, check_arrays
from provenance.statement import verify_statement
from provenance.usage import USAGE_RECEIPT_PREDICATE, UsageReceipt

#: The largest receipt envelope parsed (a receipt is about 2 KiB).
MAX_RECEIPT_BYTES = 64 * 1024
#: Standard deviations above the expected Poisson draw a sample count may lie.
SAMPLE_SIGMAS = 6.0


@dataclass(frozen=True)
class SentWork:
    """What the coordinator sent one host for one dataset in one round."""

    job_id: str
    round: int
    nonce: str
    token_jti: str
    dataset_id: str
    manifest_digest: str
    host_did: str
    worker_key: PublicKey
    evidence_digest: str
    base_model_digest: str
    layout: Mapping[str, tuple[tuple[int, ...], str]]
    #: The ε target and δ of the job on this dataset (decimal text, as in the token).
    target_epsilon: str
    delta: str
    #: Rows the dataset's training split holds, for bounding the samples claimed.
    train_rows: int
    #: The (noise multiplier, sample rate) this job's earlier accepted rounds ran here.
    mechanism: tuple[float, float] | None = None


@dataclass(frozen=True)
class Verdict:
    """The outcome for one reply: ``receipt`` and ``envelope`` are set when it verified."""

    accepted: bool
    reason: str
    receipt: UsageReceipt | None = None
    envelope: Envelope | None = None
    receipt_digest: str = ""


class _Rejected(Exception):
    """Internal: a check failed; the message is the reason recorded in the proof."""


def _reject(reason: str) -> _Rejected:
    return _Rejected(reason)


def _envelope(data: bytes | None) -> tuple[Envelope, str]:
    if data is None:
        raise _reject("no usage receipt in the reply")
    if len(data) > MAX_RECEIPT_BYTES:
        raise _reject(f"receipt is {len(data)} bytes, over the {MAX_RECEIPT_BYTES}-byte limit")
    try:
        envelope = Envelope.from_json(data)
    except ProvenanceError as exc:
        raise _reject(f"receipt envelope is malformed: {exc}") from exc
    return envelope, sha256_hex(envelope.to_json())


def _statement_receipt(envelope: Envelope, worker_key: PublicKey) -> UsageReceipt:
    try:
        statement = verify_statement(envelope, [worker_key], predicate_type=USAGE_RECEIPT_PREDICATE)
    except ProvenanceError as exc:
        raise _reject(
            f"receipt signature: not signed by the host's attested worker key ({exc})"
        ) from exc
    try:
        return UsageReceipt.from_statement(statement)
    except ProvenanceError as exc:
        raise _reject(f"receipt is malformed: {exc}") from exc


def _same(field: str, got: str, expected: str) -> None:
    if not hmac.compare_digest(got.encode(), expected.encode()):
        raise _reject(
            f"receipt {field} {got[:80]!r} does not match what was sent ({expected[:80]!r})"
        )


def _bindings(receipt: UsageReceipt, sent: SentWork) -> None:
    _same("job_id", receipt.job_id, sent.job_id)
    if receipt.round != sent.round:
        raise _reject(f"receipt is for round {receipt.round}, not {sent.round}")
    _same("nonce", receipt.nonce, sent.nonce)
    _same("token_jti", receipt.token_jti, sent.token_jti)
    _same("dataset_id", receipt.dataset_id, sent.dataset_id)
    _same("dataset_manifest_digest", receipt.dataset_manifest_digest, sent.manifest_digest)
    _same("host_did", receipt.host_did, sent.host_did)
    _same("worker_did", receipt.worker_did, sent.worker_key.did)
    _same("attestation_evidence_digest", receipt.attestation_evidence_digest, sent.evidence_digest)
    _same("base_model_digest", receipt.base_model_digest, sent.base_model_digest)
    _same("delta", receipt.delta, sent.delta)


def _update(
    arrays: Mapping[str, NDArray[Any]] | None, receipt: UsageReceipt, sent: SentWork
) -> None:
    if arrays is None:
        raise _reject("no update in the reply")
    try:
        check_arrays(arrays, sent.layout, what="update")
    except ProvenanceError as exc:
        raise _reject(str(exc)) from exc
    digest = arrays_digest(arrays)
    if not hmac.compare_digest(digest, receipt.update_digest):
        raise _reject(
            f"the update's digest {digest[:16]}… is not the receipt's {receipt.update_digest[:16]}…"
        )


def most_samples(expected: float, rate: float = 0.0) -> int:
    """The most samples a Poisson-sampled round that expects ``expected`` plausibly draws
    (``SAMPLE_SIGMAS`` standard deviations above; ``rate`` 0 bounds every sample rate)."""
    return math.floor(expected + SAMPLE_SIGMAS * math.sqrt(expected * (1 - rate) + 1) + 1)


@lru_cache(maxsize=16384)
def _round_epsilon(mechanism: Mechanism, delta: float) -> str:
    """ε of one round of ``mechanism`` at ``delta``, as receipts write it. A job's rounds
    on one dataset repeat one mechanism, so from the second round on this is a lookup."""
    return format_epsilon(epsilon_of([mechanism], delta))


def _privacy(receipt: UsageReceipt, sent: SentWork) -> Mechanism:
    try:
        mechanism = Mechanism(
            float(receipt.noise_multiplier), float(receipt.sample_rate), receipt.steps
        )
        delta = float(receipt.delta)
        round_epsilon = _round_epsilon(mechanism, delta)
    except PrivacyError as exc:
        raise _reject(f"receipt DP mechanism is invalid: {exc}") from exc
    if sent.mechanism is not None and sent.mechanism != (
        mechanism.noise_multiplier,
        mechanism.sample_rate,
    ):
        raise _reject(
            "receipt DP mechanism changed within the job: noise multiplier "
            f"{mechanism.noise_multiplier!r} and sample rate {mechanism.sample_rate!r}, earlier "
            f"rounds ran {sent.mechanism[0]!r} and {sent.mechanism[1]!r}"
        )
    if receipt.epsilon_round != round_epsilon:
        raise _reject(
            f"receipt says ε {receipt.epsilon_round} this round; "
            f"its mechanism gives {round_epsilon}"
        )
    if float(receipt.epsilon_total) > float(sent.target_epsilon) * (1 + 1e-9):
        raise _reject(
            f"receipt says ε {receipt.epsilon_total} so far, over the job's target "
            f"{sent.target_epsilon} on this dataset"
        )
    if float(receipt.epsilon_total) + 1e-12 < float(receipt.epsilon_round):
        raise _reject("receipt says less ε so far than this round alone")
    rate = mechanism.sample_rate
    expected = receipt.steps * rate * sent.train_rows
    bound = most_samples(expected, rate)
    if receipt.samples_used > bound:
        raise _reject(
            f"receipt claims {receipt.samples_used} samples; {receipt.steps} steps at sample rate "
            f"{rate!r} over {sent.train_rows} rows draw about {expected:.0f} (at most {bound:.0f})"
        )
    return mechanism


def check_reply(
    sent: SentWork, receipt_bytes: bytes | None, arrays: Mapping[str, NDArray[np.generic]] | None
) -> Verdict:
    """Verify one reply against what was sent (see the module docstring)."""
    digest = ""
    try:
        envelope, digest = _envelope(receipt_bytes)
        receipt = _statement_receipt(envelope, sent.worker_key)
        _bindings(receipt, sent)
        _update(arrays, receipt, sent)
        _privacy(receipt, sent)
    except _Rejected as exc:
        return Verdict(False, str(exc), receipt_digest=digest)
    return Verdict(True, "", receipt, envelope, digest)
