"""Signing and logging a round: the coordinator's half of the tally stick.

``record_round`` turns the verdicts of one round into a signed round proof, settles it in
the ledger (``billing.settlement``: the metered samples paid out of the job's hold to the
datasets' payees, the platform fee to the operator), appends every accepted receipt, the
proof and the signed settlement record to the transparency log (one new checkpoint), and
stores the round's summary, all in one database transaction: a round is either fully on
the record, money included, or not at all. Rejected replies are named in the proof with
their reasons and are never logged as records of their own, and nothing is metered (nor
paid) for them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlmodel import Session

from billing.pricing import price_line
from billing.settlement import SETTLEMENT_RECORD, MeteredLine, Royalty, Settlement, settle_round
from coordinator.receipt_check import SentWork, Verdict
from coordinator.tables import JobRound
from provenance.canonical import sha256_hex
from provenance.keys import SigningKey
from provenance.statement import sign_statement
from provenance.tlog.log import TransparencyLog
from provenance.tlog.records import append_records
from provenance.usage import (
    ROUND_PROOF_RECORD,
    USAGE_RECEIPT_RECORD,
    AcceptedReceipt,
    MeteredUse,
    RejectedWork,
    RoundProof,
)


@dataclass(frozen=True)
class DatasetPrice:
    """A dataset's price in a job, as quoted."""

    price_per_sample: str
    currency: str


@dataclass(frozen=True)
class RoundBilling:
    """How a job's rounds are paid: its currency, platform fee and each dataset's payees."""

    currency: str
    fee_bps: int
    royalties: Mapping[str, Royalty]


@dataclass(frozen=True)
class RecordedRound:
    """Where a round landed: the proof's log index and digest, and the log's new size."""

    proof_log_index: int
    proof_digest: str
    tree_size: int
    summary: dict[str, Any]


def _metered(
    accepted: Sequence[tuple[SentWork, Verdict]], prices: Mapping[str, DatasetPrice]
) -> tuple[MeteredUse, ...]:
    samples: dict[str, tuple[str, int]] = {}
    for sent, verdict in accepted:
        assert verdict.receipt is not None
        digest, count = samples.get(sent.dataset_id, (sent.manifest_digest, 0))
        samples[sent.dataset_id] = (digest, count + verdict.receipt.samples_used)
    return tuple(
        MeteredUse(
            dataset_id=dataset_id,
            dataset_manifest_digest=digest,
            samples=count,
            price_per_sample=prices[dataset_id].price_per_sample,
            currency=prices[dataset_id].currency,
        )
        for dataset_id, (digest, count) in sorted(samples.items())
    )


def build_round_proof(
    *,
    job_id: str,
    round_number: int,
    strategy: str,
    previous_model_digest: str,
    new_model_digest: str,
    verdicts: Sequence[tuple[SentWork, Verdict]],
    missing: Sequence[tuple[SentWork, str]],
    prices: Mapping[str, DatasetPrice],
    metrics: Mapping[str, str],
) -> RoundProof:
    """The round proof for these verdicts: accepted receipts, rejected and missing work."""
    accepted = [(sent, verdict) for sent, verdict in verdicts if verdict.accepted]
    rejected = [
        RejectedWork(
            sent.host_did, sent.dataset_id, sent.manifest_digest, v.receipt_digest, v.reason
        )
        for sent, v in verdicts
        if not v.accepted
    ] + [
        RejectedWork(sent.host_did, sent.dataset_id, sent.manifest_digest, "", reason)
        for sent, reason in missing
    ]
    return RoundProof(
        job_id=job_id,
        round=round_number,
        strategy=strategy,
        previous_model_digest=previous_model_digest,
        new_model_digest=new_model_digest,
        accepted=tuple(
            AcceptedReceipt(
                host_did=sent.host_did,
                dataset_id=sent.dataset_id,
                dataset_manifest_digest=sent.manifest_digest,
                receipt_digest=verdict.receipt_digest,
                update_digest=verdict.receipt.update_digest,
                samples=verdict.receipt.samples_used,
                epsilon_total=verdict.receipt.epsilon_total,
            )
            for sent, verdict in accepted
            if verdict.receipt is not None
        ),
        rejected=tuple(rejected),
        metered=_metered(accepted, prices),
        metrics=dict(metrics),
    )


def round_cost_minor(proof: RoundProof) -> int:
    """What the round's metered samples cost, in minor units (each dataset rounded up)."""
    return sum(
        price_line(
            use.dataset_id, use.samples, Decimal(use.price_per_sample), use.currency
        ).amount_minor
        for use in proof.metered
    )


def record_round(
    session: Session,
    log: TransparencyLog,
    key: SigningKey,
    proof: RoundProof,
    verdicts: Sequence[tuple[SentWork, Verdict]],
    *,
    summary: dict[str, Any],
    billing: RoundBilling,
    now: datetime,
) -> RecordedRound:
    """Sign ``proof``, settle it, log the accepted receipts, the proof and the settlement,
    and store the round row, in ``session``'s transaction."""
    receipts = [
        (USAGE_RECEIPT_RECORD, verdict.envelope, verdict.receipt.to_statement())
        for _, verdict in verdicts
        if verdict.accepted and verdict.envelope is not None and verdict.receipt is not None
    ]
    statement = proof.to_statement()
    envelope = sign_statement(statement, [key])
    proof_digest = sha256_hex(envelope.to_json())
    settlement = _settle(session, proof, proof_digest, billing, now)
    settled = settlement.to_statement()
    result = append_records(
        log,
        [
            *receipts,
            (ROUND_PROOF_RECORD, envelope, statement),
            (SETTLEMENT_RECORD, sign_statement(settled, [key]), settled),
        ],
        connection=session.connection(),
    )
    proof_index = result.indexes[-2]
    cost = round_cost_minor(proof)
    samples = sum(use.samples for use in proof.metered)
    summary = {
        **summary,
        "proof_log_index": proof_index,
        "receipt_log_indexes": list(result.indexes[:-2]),
        "settlement_log_index": result.indexes[-1],
        "settled_minor": settlement.total_minor,
        "fee_minor": settlement.fee_minor,
        "hold_left_minor": settlement.hold_left_minor,
        "proof_digest": proof_digest,
        "tree_size": result.size,
        "samples": samples,
        "cost_minor": cost,
    }
    session.add(
        JobRound(
            job_id=proof.job_id,
            round_number=proof.round,
            status="aggregated",
            model_digest=proof.new_model_digest,
            proof_log_index=proof_index,
            proof_digest=proof_digest,
            samples=samples,
            cost_minor=cost,
            summary=json.dumps(summary, sort_keys=True),
            finished_at=now,
        )
    )
    session.flush()
    return RecordedRound(proof_index, proof_digest, result.size, summary)


def _settle(
    session: Session, proof: RoundProof, proof_digest: str, billing: RoundBilling, now: datetime
) -> Settlement:
    lines = [
        MeteredLine(
            use.dataset_id,
            use.samples,
            Decimal(use.price_per_sample),
            billing.royalties[use.dataset_id],
        )
        for use in proof.metered
    ]
    return settle_round(
        session,
        job_id=proof.job_id,
        round_number=proof.round,
        proof_digest=proof_digest,
        currency=billing.currency,
        lines=lines,
        fee_bps=billing.fee_bps,
        now=now,
    )
