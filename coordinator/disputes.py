"""Disputes on the coordinator: who may open, read and resolve them, and their log records.

A job's buyer, or a creator whose dataset the job used, opens a dispute on the job or one
of its rounds with a reason; the royalties that work paid are frozen in the dispute's
reserve (``billing.disputes``). Only an admin resolves it: ``release`` gives the money back
to the payees, ``refund`` pays it to the buyer. Opening and resolving are each one
transaction with a signed ``…/dispute/v1`` record in the transparency log.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from billing.disputes import (
    REFUNDED,
    RELEASED,
    DisputeError,
    frozen_parts,
    open_dispute,
    resolve_dispute,
)
from billing.tables import Dispute
from coordinator.accounts import Principal
from coordinator.errors import Conflict, Forbidden, InvalidRequest, NotFound
from coordinator.jobs import visible_job
from coordinator.records import log_signed_record
from coordinator.tables import JobRound
from provenance.canonical import sha256_hex
from provenance.keys import SigningKey
from provenance.statement import predicate_type
from provenance.tlog.log import TransparencyLog

DISPUTE_PREDICATE = predicate_type("dispute")
DISPUTE_RECORD = "dispute"
#: What ``resolve`` accepts, and the ledger outcome each means.
OUTCOMES = {"release": RELEASED, "refund": REFUNDED}


def dispute_view(session: Session, dispute: Dispute) -> dict[str, Any]:
    """A dispute as the API shows it (amounts as strings of minor units)."""
    return {
        "id": dispute.id,
        "job_id": dispute.job_id,
        "round": dispute.round_number,
        "status": dispute.status,
        "opened_by": dispute.opened_by,
        "reason": dispute.reason,
        "currency": dispute.currency,
        "frozen_minor": str(dispute.frozen_minor),
        "frozen": {k: str(v) for k, v in sorted(frozen_parts(session, dispute).items())},
        "resolution": dispute.resolution,
        "resolved_by": dispute.resolved_by,
        "opened_at": dispute.opened_at.isoformat(),
        "resolved_at": dispute.resolved_at.isoformat() if dispute.resolved_at else None,
    }


def _log(
    session: Session, log: TransparencyLog, key: SigningKey, dispute: Dispute, event: str
) -> int:
    return log_signed_record(
        session,
        log,
        key,
        record_type=DISPUTE_RECORD,
        subject=(f"tallystick:dispute/{dispute.id}", sha256_hex(dispute.reason.encode())),
        predicate_type_uri=DISPUTE_PREDICATE,
        predicate={
            "dispute_id": dispute.id,
            "event": event,
            "job_id": dispute.job_id,
            "round": dispute.round_number,
            "status": dispute.status,
            "currency": dispute.currency,
            "frozen_minor": str(dispute.frozen_minor),
            "actor": dispute.resolved_by if event == "resolved" else dispute.opened_by,
            "note": dispute.resolution if event == "resolved" else dispute.reason,
        },
    )


def open_job_dispute(
    session: Session,
    log: TransparencyLog,
    key: SigningKey,
    principal: Principal,
    job_id: str,
    *,
    round_number: int | None,
    reason: str,
    now: datetime,
) -> dict[str, Any]:
    """Open a dispute on ``job_id`` (or one round); see the module docstring."""
    principal.require("buyer", "creator", "admin")
    job = visible_job(session, principal, job_id, lock=True)
    if job.status in ("draft", "cancelled") and round_number is None:
        raise Conflict(f"job {job.id} is {job.status}; it has paid nothing to dispute")
    if round_number is not None:
        done = session.exec(
            select(JobRound.round_number).where(
                JobRound.job_id == job.id, col(JobRound.status) == "aggregated"
            )
        ).all()
        if round_number not in done:
            raise InvalidRequest(f"job {job.id} has no settled round {round_number}", field="round")
    try:
        frozen = open_dispute(
            session,
            dispute_id="dsp_" + secrets.token_hex(13),
            job_id=job.id,
            round_number=round_number,
            currency=job.currency,
            opened_by=principal.account_id,
            reason=reason,
            now=now,
        )
    except DisputeError as exc:
        raise Conflict(str(exc)) from exc
    _log(session, log, key, frozen.dispute, "opened")
    return dispute_view(session, frozen.dispute)


def visible_dispute(session: Session, principal: Principal, dispute_id: str) -> Dispute:
    """A dispute on a job the caller may see, else ``NotFound``."""
    dispute = session.get(Dispute, dispute_id)
    if dispute is None:
        raise NotFound(f"no dispute {dispute_id!r}")
    visible_job(session, principal, dispute.job_id)
    return dispute


def resolve_job_dispute(
    session: Session,
    log: TransparencyLog,
    key: SigningKey,
    principal: Principal,
    dispute_id: str,
    *,
    outcome: str,
    note: str,
    now: datetime,
) -> dict[str, Any]:
    """Resolve an open dispute (admins only): ``release`` or ``refund``."""
    if principal.role != "admin":
        raise Forbidden("only an admin resolves disputes")
    if outcome not in OUTCOMES:
        raise InvalidRequest(
            f"outcome must be one of {', '.join(OUTCOMES)}, not {outcome!r}", field="outcome"
        )
    dispute = visible_dispute(session, principal, dispute_id)
    job = visible_job(session, principal, dispute.job_id, lock=True)
    try:
        frozen = resolve_dispute(
            session,
            dispute.id,
            outcome=OUTCOMES[outcome],
            buyer_id=job.buyer_id,
            resolved_by=principal.account_id,
            note=note,
            now=now,
        )
    except DisputeError as exc:
        raise Conflict(str(exc)) from exc
    _log(session, log, key, frozen.dispute, "resolved")
    return dispute_view(session, frozen.dispute)
