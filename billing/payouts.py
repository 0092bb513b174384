"""What the platform owes, and the rail operations that pay it, crash-safe.

A payout (to a creator) or refund (to a buyer) is three steps, each its own commit:

1. ``begin_operation``: a *pending* ledger transfer from the party's payable to the rail's
   clearing account (the money is reserved at once, so it cannot be paid twice) and a
   ``RailOperation`` row whose id is both that transfer's id and the rail call's
   idempotency key;
2. the caller calls the rail with that key;
3. ``complete_operation`` posts the transfer and records the rail's id, or
   ``fail_operation`` voids it (the rail refused; the money is owed again).

A process that dies after 1 leaves a pending operation; ``pending_operations`` lists it
and the caller reconciles it against the rail by its key (look it up, else call again with
the same key) before anything new is paid. Funding operations (``fund:JOB``) have no
ledger transfer of their own: the hold is placed when the rail says the payment succeeded.

Amounts owed are per job and party: what the job's transfers credited to the party's
payable (royalties, releases, dispute outcomes) less what they debited (dispute
freezes, payouts or refunds made or in flight), never more than the account has.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from billing.errors import BillingError
from billing.ledger import (
    VOIDED,
    AccountKind,
    account_id,
    open_account,
    resolve,
    transfer,
)
from billing.tables import LedgerAccount, LedgerTransfer, RailOperation

#: Operation kinds.
FUND, PAYOUT, REFUND = "fund", "payout", "refund"
#: Operation states.
PENDING, SUCCEEDED, FAILED, REQUIRES_ACTION = "pending", "succeeded", "failed", "requires_action"


class PayoutError(BillingError):
    """A payout operation cannot be written as asked; nothing was written."""


@dataclass(frozen=True)
class Owed:
    """What the platform owes one party for one job."""

    job_id: str
    party: str
    currency: str
    amount_minor: int
    kind: str  # PAYOUT to a creator, REFUND to the job's buyer


def owed(session: Session, *, buyers: dict[str, str]) -> list[Owed]:
    """Everything owed now, per job and party (``buyers`` maps job ids to their buyers,
    whose lines are refunds), oldest job first, parties in id order."""
    payables = {
        account.id: account
        for account in session.exec(
            select(LedgerAccount).where(LedgerAccount.kind == AccountKind.PAYABLE.value)
        )
    }
    if not payables:
        return []
    rows = session.exec(
        select(LedgerTransfer)
        .where(
            col(LedgerTransfer.job_id).is_not(None),
            LedgerTransfer.status != VOIDED,
            col(LedgerTransfer.debit_account).in_(payables)
            | col(LedgerTransfer.credit_account).in_(payables),
        )
        .order_by(col(LedgerTransfer.created_at), col(LedgerTransfer.id))
    )
    net: dict[tuple[str, str], int] = defaultdict(int)
    for row in rows:
        job = row.job_id or ""
        if row.credit_account in payables:
            net[(job, row.credit_account)] += row.amount_minor
        if row.debit_account in payables:
            net[(job, row.debit_account)] -= row.amount_minor
    left = {
        key: account.credits_posted - account.debits_posted - account.debits_pending
        for key, account in payables.items()
    }
    lines: list[Owed] = []
    for (job, key), amount in net.items():
        amount = min(amount, left[key])
        if amount <= 0:
            continue
        left[key] -= amount
        account = payables[key]
        kind = REFUND if buyers.get(job) == account.owner else PAYOUT
        lines.append(Owed(job, account.owner, account.currency, amount, kind))
    return lines


def pending_operations(session: Session) -> list[RailOperation]:
    """Operations started and not yet answered (oldest first): payouts and refunds the
    rail has not confirmed, payments still waiting for the rail or the buyer."""
    return list(
        session.exec(
            select(RailOperation)
            .where(col(RailOperation.status).in_((PENDING, REQUIRES_ACTION)))
            .order_by(col(RailOperation.created_at), col(RailOperation.id))
        )
    )


def operations_of(session: Session, job_id: str) -> list[RailOperation]:
    """Every rail operation of one job, oldest first."""
    return list(
        session.exec(
            select(RailOperation)
            .where(RailOperation.job_id == job_id)
            .order_by(col(RailOperation.created_at), col(RailOperation.id))
        )
    )


def begin_operation(session: Session, line: Owed, *, rail: str, now: datetime) -> RailOperation:
    """Step 1 (see the module docstring): reserve ``line`` in the ledger and record the
    operation that will pay it. The id counts the party's earlier operations for the job,
    so it is the same for the same step whichever process takes it."""
    earlier = session.exec(
        select(RailOperation.id).where(
            RailOperation.job_id == line.job_id,
            RailOperation.party == line.party,
            RailOperation.kind == line.kind,
        )
    ).all()
    if line.kind == REFUND:
        key = f"refund:{line.job_id}:{len(earlier) + 1}"
    else:
        key = f"payout:{line.job_id}:{line.party}:{len(earlier) + 1}"
    clearing = open_account(session, AccountKind.CLEARING, rail, line.currency, now=now)
    transfer(
        session,
        key,
        debit=account_id(AccountKind.PAYABLE, line.party, line.currency),
        credit=clearing.id,
        amount_minor=line.amount_minor,
        kind=line.kind,
        now=now,
        pending=True,
        job_id=line.job_id,
        reference=f"{line.kind} on the {rail} rail",
    )
    operation = RailOperation(
        id=key,
        kind=line.kind,
        rail=rail,
        job_id=line.job_id,
        party=line.party,
        amount_minor=line.amount_minor,
        currency=line.currency,
        status=PENDING,
        created_at=now,
        updated_at=now,
    )
    session.add(operation)
    session.flush()
    return operation


def _locked_operation(session: Session, key: str) -> RailOperation:
    operation = session.exec(
        select(RailOperation).where(RailOperation.id == key).with_for_update()
    ).first()
    if operation is None:
        raise PayoutError(f"no rail operation {key!r}")
    return operation


def complete_operation(
    session: Session, key: str, *, reference: str, now: datetime
) -> RailOperation:
    """Step 3: the rail made ``reference``; post the reserved transfer (once)."""
    operation = _locked_operation(session, key)
    if operation.status == SUCCEEDED:
        if operation.rail_ref != reference:
            raise PayoutError(
                f"rail operation {key} succeeded as {operation.rail_ref}, not {reference}"
            )
        return operation
    # A payment may still succeed after it asked the buyer to act, or after an attempt
    # failed (the buyer retried); a payout or refund is answered once, from pending.
    answerable = (PENDING, REQUIRES_ACTION, FAILED) if operation.kind == FUND else (PENDING,)
    if operation.status not in answerable:
        raise PayoutError(f"rail operation {key} is {operation.status}, not pending")
    if operation.kind != FUND:
        resolve(session, key, post=True, now=now)
    operation.status = SUCCEEDED
    operation.rail_ref = reference
    operation.updated_at = now
    session.add(operation)
    session.flush()
    return operation


def fail_operation(session: Session, key: str, *, reason: str, now: datetime) -> RailOperation:
    """Step 3, refused: void the reserved transfer, so that the amount is owed again."""
    operation = _locked_operation(session, key)
    if operation.status == FAILED:
        return operation
    if operation.status not in (PENDING, REQUIRES_ACTION):
        raise PayoutError(f"rail operation {key} is {operation.status}; it cannot fail now")
    if operation.kind != FUND:
        resolve(session, key, post=False, now=now)
    operation.status = FAILED
    operation.detail = reason[:2000]
    operation.updated_at = now
    session.add(operation)
    session.flush()
    return operation


def begin_funding(
    session: Session,
    *,
    job_id: str,
    buyer: str,
    amount_minor: int,
    currency: str,
    rail: str,
    now: datetime,
) -> RailOperation:
    """The funding operation of ``job_id`` (``fund:JOB``), made once; a failed one is
    started again (a buyer may retry with another card), under a new key."""
    tries = session.exec(
        select(RailOperation).where(RailOperation.job_id == job_id, RailOperation.kind == FUND)
    ).all()
    live = [item for item in tries if item.status != FAILED]
    if live:
        operation = live[0]
        if operation.amount_minor != amount_minor or operation.currency != currency:
            raise PayoutError(
                f"job {job_id} has a payment of {operation.amount_minor} {operation.currency} "
                "under way for another amount"
            )
        return operation
    key = f"fund:{job_id}" if not tries else f"fund:{job_id}:{len(tries) + 1}"
    operation = RailOperation(
        id=key,
        kind=FUND,
        rail=rail,
        job_id=job_id,
        party=buyer,
        amount_minor=amount_minor,
        currency=currency,
        status=PENDING,
        created_at=now,
        updated_at=now,
    )
    session.add(operation)
    session.flush()
    return operation


def funding_of(session: Session, job_id: str) -> RailOperation | None:
    """The job's successful funding operation, if it was funded through a rail call."""
    return session.exec(
        select(RailOperation).where(
            RailOperation.job_id == job_id,
            RailOperation.kind == FUND,
            RailOperation.status == SUCCEEDED,
        )
    ).first()


def note_status(
    session: Session, key: str, *, status: str, reference: str | None, now: datetime
) -> RailOperation:
    """Record a funding operation's intermediate state (e.g. ``requires_action``)."""
    operation = _locked_operation(session, key)
    if operation.status in (SUCCEEDED, FAILED):
        return operation
    operation.status = status
    operation.rail_ref = reference or operation.rail_ref
    operation.updated_at = now
    session.add(operation)
    session.flush()
    return operation
