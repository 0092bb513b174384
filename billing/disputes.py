"""Disputes: a buyer or creator contests a job or one of its rounds, and the money that
work was paid is frozen until an admin resolves it.

``open_dispute`` moves every royalty the disputed work paid (the round's, or all of the
job's rounds') from each payee's payable into the dispute's reserve account, as far as the
payee still has it, in one transaction with the dispute row. ``resolve_dispute`` moves the
reserve back to the payees (``release``) or to the buyer's payable (``refund``), once.
Transfer ids derive from the dispute id and the payee, so nothing moves twice. Like the
rest of ``billing``, these functions write in the caller's transaction and never commit.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from billing.errors import BillingError
from billing.ledger import (
    AccountKind,
    TransferRequest,
    account_id,
    balance,
    open_account,
    transfer_batch,
    transfer_id,
)
from billing.tables import Dispute, LedgerTransfer

OPEN, RELEASED, REFUNDED = "open", "released", "refunded"
#: The longest reason or resolution note kept.
MAX_REASON = 2000


class DisputeError(BillingError):
    """A dispute cannot be opened or resolved as asked; nothing was written."""


@dataclass(frozen=True)
class Frozen:
    """What a dispute froze: per payee account, in minor units."""

    dispute: Dispute
    parts: dict[str, int]


def _reason(text: str, what: str) -> str:
    cleaned = text.strip()
    if not cleaned:
        raise DisputeError(f"a dispute needs a {what}")
    if len(cleaned) > MAX_REASON:
        raise DisputeError(f"the {what} is {len(cleaned)} characters, over {MAX_REASON}")
    return cleaned


def _paid(session: Session, job_id: str, round_number: int | None) -> dict[str, int]:
    statement = select(LedgerTransfer).where(
        LedgerTransfer.job_id == job_id,
        LedgerTransfer.kind == "royalty",
        LedgerTransfer.status == "posted",
    )
    if round_number is not None:
        statement = statement.where(LedgerTransfer.round_number == round_number)
    paid: dict[str, int] = defaultdict(int)
    for item in session.exec(statement):
        paid[item.credit_account] += item.amount_minor
    return dict(paid)


def open_dispute(
    session: Session,
    *,
    dispute_id: str,
    job_id: str,
    round_number: int | None,
    currency: str,
    opened_by: str,
    reason: str,
    now: datetime,
) -> Frozen:
    """Open a dispute on ``job_id`` (or one round of it) and freeze what it paid."""
    text = _reason(reason, "reason")
    if session.get(Dispute, dispute_id) is not None:
        raise DisputeError(f"dispute {dispute_id} exists")
    for other in session.exec(
        select(Dispute).where(Dispute.job_id == job_id, Dispute.status == OPEN)
    ):
        if other.round_number is None or round_number is None or other.round_number == round_number:
            raise DisputeError(f"dispute {other.id} already holds this work; resolve it first")
    reserve = open_account(session, AccountKind.RESERVE, dispute_id, currency, now=now)
    parts: dict[str, int] = {}
    requests = []
    for payable, amount in sorted(_paid(session, job_id, round_number).items()):
        frozen = min(amount, balance(session, payable).available)
        if frozen <= 0:
            continue
        parts[payable] = frozen
        requests.append(
            TransferRequest(
                transfer_id("freeze", dispute_id, payable), payable, reserve.id, frozen,
                "freeze", job_id, round_number, f"dispute {dispute_id}",
            )
        )  # fmt: skip
    if requests:
        transfer_batch(session, requests, now=now)
    dispute = Dispute(
        id=dispute_id,
        job_id=job_id,
        round_number=round_number,
        opened_by=opened_by,
        reason=text,
        currency=currency,
        frozen_minor=sum(parts.values()),
        status=OPEN,
        opened_at=now,
    )
    session.add(dispute)
    session.flush()
    return Frozen(dispute, parts)


def frozen_parts(session: Session, dispute: Dispute) -> dict[str, int]:
    """Per payee account, what ``dispute`` froze."""
    rows = session.exec(
        select(LedgerTransfer).where(
            col(LedgerTransfer.id).startswith(f"freeze:{dispute.id}:"),
            LedgerTransfer.kind == "freeze",
        )
    )
    return {row.debit_account: row.amount_minor for row in rows}


def resolve_dispute(
    session: Session,
    dispute_id: str,
    *,
    outcome: str,
    buyer_id: str,
    resolved_by: str,
    note: str,
    now: datetime,
) -> Frozen:
    """Release the frozen money to its payees, or refund it to the buyer (once)."""
    text = _reason(note, "resolution note")
    if outcome not in (RELEASED, REFUNDED):
        raise DisputeError(
            f"a dispute is resolved as {RELEASED!r} or {REFUNDED!r}, not {outcome!r}"
        )
    dispute = session.exec(
        select(Dispute).where(Dispute.id == dispute_id).with_for_update()
    ).first()
    if dispute is None:
        raise DisputeError(f"no dispute {dispute_id!r}")
    if dispute.status != OPEN:
        raise DisputeError(f"dispute {dispute_id} is already {dispute.status}")
    parts = frozen_parts(session, dispute)
    reserve = account_id(AccountKind.RESERVE, dispute.id, dispute.currency)
    refund = open_account(session, AccountKind.PAYABLE, buyer_id, dispute.currency, now=now).id
    requests = [
        TransferRequest(
            transfer_id(outcome, dispute.id, payable), reserve,
            payable if outcome == RELEASED else refund, amount, outcome, dispute.job_id,
            dispute.round_number, f"dispute {dispute.id}",
        )
        for payable, amount in sorted(parts.items())
    ]  # fmt: skip
    if requests:
        transfer_batch(session, requests, now=now)
    dispute.status = outcome
    dispute.resolution = text
    dispute.resolved_by = resolved_by
    dispute.resolved_at = now
    session.add(dispute)
    session.flush()
    return Frozen(dispute, parts)
