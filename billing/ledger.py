"""A double-entry ledger with two-phase transfers, in the caller's database transaction.

Every movement of money is one ``LedgerTransfer`` of a positive integer amount from a
debit account to a credit account of the same currency, so every transaction balances by
construction: the sum over all accounts of (credits - debits) is always zero. A transfer
is either posted at once, or pending and later posted or voided (exactly once). Pending
debits count against the debit account's balance at once, so a hold can never be spent
twice.

Account kinds (``AccountKind``) and their rules:

- ``clearing``: the payment rail's side (money in from buyers, out to creators); the only
  kind that may go negative (a negative clearing balance is money the rail brought in);
- ``hold``: one job's escrow, funded at funding time, spent by settlements, released;
- ``payable``: what the platform owes a creator (royalties) or a buyer (refunds);
- ``fee``: the platform's fee income;
- ``reserve``: amounts a dispute froze.

No account but ``clearing`` ever has debits (posted plus pending) above its posted
credits: ``transfer`` refuses with ``InsufficientFunds`` and writes nothing.

Transfers are idempotent: the id says what the transfer is for (``transfer_id``), the
database keeps ids unique, and asking again for a transfer that exists returns it if it
is the same movement and refuses with ``TransferConflict`` if it is not. Corrections are
new transfers. All functions work inside the caller's ``Session`` and never commit: the
coordinator commits ledger postings together with the records they rest on.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import func
from sqlmodel import Session, col, select

from billing.currency import check_currency
from billing.errors import BillingError
from billing.tables import LedgerAccount, LedgerTransfer

#: Transfer states.
PENDING, POSTED, VOIDED = "pending", "posted", "voided"
_ID = re.compile(r"^[a-z][a-z0-9_]*(:[A-Za-z0-9_.\-]+)+$")
MAX_ID = 200


class AccountKind(StrEnum):
    """What an account holds (see the module docstring)."""

    CLEARING = "clearing"
    HOLD = "hold"
    PAYABLE = "payable"
    FEE = "fee"
    RESERVE = "reserve"


class LedgerError(BillingError):
    """A ledger operation was refused; nothing was written."""


class InsufficientFunds(LedgerError):
    """A transfer would take an account below zero."""


class TransferConflict(LedgerError):
    """A transfer id exists for a different movement, or a pending transfer was resolved."""


@dataclass(frozen=True)
class Balance:
    """An account's balance: posted (credits - debits) and what pending transfers hold."""

    account_id: str
    currency: str
    posted: int
    pending_debits: int
    pending_credits: int

    @property
    def available(self) -> int:
        """What may still be debited: posted balance less pending debits."""
        return self.posted - self.pending_debits


def account_id(kind: AccountKind, owner: str, currency: str) -> str:
    """The id of ``owner``'s account of ``kind`` in ``currency`` (e.g. ``hold:job_…:USD``)."""
    return f"{kind.value}:{owner}:{check_currency(currency)}"


def transfer_id(kind: str, *parts: object) -> str:
    """A transfer id from what it is for: ``kind:part:part…``. Ids over ``MAX_ID``
    characters keep their kind and a SHA-256 of the rest (they stay unique and stable)."""
    text = ":".join([kind, *(str(part) for part in parts)])
    if len(text) > MAX_ID:
        text = f"{kind}:sha256_{hashlib.sha256(text.encode()).hexdigest()}"
    if not _ID.fullmatch(text):
        raise LedgerError(f"transfer id {text[:80]!r} is malformed")
    return text


def open_account(
    session: Session, kind: AccountKind, owner: str, currency: str, *, now: datetime
) -> LedgerAccount:
    """``owner``'s account of ``kind`` in ``currency``, created if it does not exist yet."""
    (key,) = open_accounts(session, kind, [owner], currency, now=now)
    account = session.get(LedgerAccount, key)
    assert account is not None  # just found or created
    return account


def _locked(session: Session, key: str) -> LedgerAccount:
    statement = select(LedgerAccount).where(LedgerAccount.id == key).with_for_update()
    account = session.exec(statement).first()
    if account is None:
        raise LedgerError(f"no ledger account {key!r}")
    return account


def _same(existing: LedgerTransfer, wanted: LedgerTransfer) -> bool:
    return (
        existing.debit_account,
        existing.credit_account,
        existing.amount_minor,
        existing.currency,
        existing.kind,
        existing.job_id,
        existing.round_number,
    ) == (
        wanted.debit_account,
        wanted.credit_account,
        wanted.amount_minor,
        wanted.currency,
        wanted.kind,
        wanted.job_id,
        wanted.round_number,
    )


def transfer(
    session: Session,
    transfer_key: str,
    *,
    debit: str,
    credit: str,
    amount_minor: int,
    kind: str,
    now: datetime,
    pending: bool = False,
    job_id: str | None = None,
    round_number: int | None = None,
    reference: str = "",
) -> LedgerTransfer:
    """Move ``amount_minor`` from ``debit`` to ``credit`` (see the module docstring).

    Returns the transfer (the existing one if this exact movement was asked for before).
    Raises ``InsufficientFunds`` if ``debit`` may not go negative and lacks the amount,
    ``TransferConflict`` if the id names another movement, ``LedgerError`` otherwise.
    """
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int) or amount_minor <= 0:
        raise LedgerError(f"transfer {transfer_key}: amount must be a positive integer")
    if debit == credit:
        raise LedgerError(f"transfer {transfer_key}: debit and credit are the same account")
    wanted = LedgerTransfer(
        id=transfer_key,
        debit_account=debit,
        credit_account=credit,
        amount_minor=amount_minor,
        currency="",
        kind=kind,
        status=PENDING if pending else POSTED,
        job_id=job_id,
        round_number=round_number,
        reference=reference,
        created_at=now,
    )
    existing = session.get(LedgerTransfer, transfer_key)
    # Lock both accounts in a fixed order, so that two writers never deadlock.
    first, second = sorted((debit, credit))
    locked = {first: _locked(session, first), second: _locked(session, second)}
    source, target = locked[debit], locked[credit]
    if source.currency != target.currency:
        raise LedgerError(
            f"transfer {transfer_key}: {debit} is in {source.currency}, {credit} in "
            f"{target.currency}"
        )
    wanted.currency = source.currency
    if existing is not None:
        if not _same(existing, wanted):
            raise TransferConflict(
                f"transfer {transfer_key} exists for another movement "
                f"({existing.amount_minor} from {existing.debit_account} to "
                f"{existing.credit_account})"
            )
        return existing
    if not source.may_go_negative:
        available = source.credits_posted - source.debits_posted - source.debits_pending
        if available < amount_minor:
            raise InsufficientFunds(
                f"transfer {transfer_key}: {debit} has {available} available, {amount_minor} asked"
            )
    if pending:
        source.debits_pending += amount_minor
        target.credits_pending += amount_minor
    else:
        source.debits_posted += amount_minor
        target.credits_posted += amount_minor
    session.add(source)
    session.add(target)
    session.add(wanted)
    session.flush()
    return wanted


@dataclass(frozen=True)
class TransferRequest:
    """One posted transfer of a batch (see ``transfer_batch``)."""

    id: str
    debit: str
    credit: str
    amount_minor: int
    kind: str
    job_id: str | None = None
    round_number: int | None = None
    reference: str = ""


def transfer_batch(
    session: Session, requests: list[TransferRequest], *, now: datetime
) -> list[LedgerTransfer]:
    """Post every transfer of ``requests`` (all accounts must exist), all or none.

    The same rules as ``transfer`` for each, checked in order against balances that
    include the earlier transfers of the batch, with one query to lock every account
    involved (in id order) and one to find the transfers that exist already (returned as
    they are when they are the same movement). Raises ``InsufficientFunds``,
    ``TransferConflict`` or ``LedgerError`` and writes nothing if any transfer fails.
    """
    keys = sorted({key for r in requests for key in (r.debit, r.credit)})
    statement = (
        select(LedgerAccount)
        .where(col(LedgerAccount.id).in_(keys))
        .order_by(col(LedgerAccount.id))
        .with_for_update()
    )
    accounts = {account.id: account for account in session.exec(statement)}
    missing = [key for key in keys if key not in accounts]
    if missing:
        raise LedgerError(f"no ledger account {missing[0]!r}")
    ids = [r.id for r in requests]
    if len(set(ids)) != len(ids):
        raise LedgerError("a batch names the same transfer twice")
    existing = {
        row.id: row
        for row in session.exec(select(LedgerTransfer).where(col(LedgerTransfer.id).in_(ids)))
    }
    planned: list[tuple[LedgerTransfer, bool]] = []
    spent: dict[str, int] = {}
    for request in requests:
        if (
            isinstance(request.amount_minor, bool)
            or not isinstance(request.amount_minor, int)
            or request.amount_minor <= 0
        ):
            raise LedgerError(f"transfer {request.id}: amount must be a positive integer")
        if request.debit == request.credit:
            raise LedgerError(f"transfer {request.id}: debit and credit are the same account")
        source, target = accounts[request.debit], accounts[request.credit]
        if source.currency != target.currency:
            raise LedgerError(
                f"transfer {request.id}: {request.debit} is in {source.currency}, "
                f"{request.credit} in {target.currency}"
            )
        wanted = LedgerTransfer(
            id=request.id,
            debit_account=request.debit,
            credit_account=request.credit,
            amount_minor=request.amount_minor,
            currency=source.currency,
            kind=request.kind,
            status=POSTED,
            job_id=request.job_id,
            round_number=request.round_number,
            reference=request.reference,
            created_at=now,
        )
        found = existing.get(request.id)
        if found is not None:
            if not _same(found, wanted):
                raise TransferConflict(f"transfer {request.id} exists for another movement")
            planned.append((found, False))
            continue
        if not source.may_go_negative:
            available = (
                source.credits_posted
                - source.debits_posted
                - source.debits_pending
                - spent.get(source.id, 0)
            )
            if available < request.amount_minor:
                raise InsufficientFunds(
                    f"transfer {request.id}: {request.debit} has {available} available, "
                    f"{request.amount_minor} asked"
                )
        spent[source.id] = spent.get(source.id, 0) + request.amount_minor
        planned.append((wanted, True))
    for row, new in planned:
        if new:
            accounts[row.debit_account].debits_posted += row.amount_minor
            accounts[row.credit_account].credits_posted += row.amount_minor
    session.add_all([row for row, new in planned if new])
    session.add_all(accounts.values())
    session.flush()
    return [row for row, _ in planned]


def open_accounts(
    session: Session, kind: AccountKind, owners: list[str], currency: str, *, now: datetime
) -> list[str]:
    """The ids of ``owners``' accounts of ``kind`` in ``currency``, creating the missing
    ones (one query to find them)."""
    keys = [account_id(kind, owner, currency) for owner in owners]
    found = set(session.exec(select(LedgerAccount.id).where(col(LedgerAccount.id).in_(keys))))
    created = [
        LedgerAccount(
            id=key,
            kind=kind.value,
            owner=owner,
            currency=currency,
            may_go_negative=kind is AccountKind.CLEARING,
            created_at=now,
        )
        for key, owner in dict(zip(keys, owners, strict=True)).items()
        if key not in found
    ]
    if created:
        session.add_all(created)
        session.flush()
    return keys


def resolve(session: Session, transfer_key: str, *, post: bool, now: datetime) -> LedgerTransfer:
    """Post (``post=True``) or void a pending transfer, exactly once. Asking again for the
    same outcome returns the transfer; asking for the other one raises ``TransferConflict``."""
    pending = session.exec(
        select(LedgerTransfer).where(LedgerTransfer.id == transfer_key).with_for_update()
    ).first()
    if pending is None:
        raise LedgerError(f"no transfer {transfer_key!r}")
    outcome = POSTED if post else VOIDED
    if pending.status == outcome and pending.resolved_at is not None:
        return pending
    if pending.status != PENDING:
        raise TransferConflict(f"transfer {transfer_key} is {pending.status}, not pending")
    first, second = sorted((pending.debit_account, pending.credit_account))
    locked = {first: _locked(session, first), second: _locked(session, second)}
    source, target = locked[pending.debit_account], locked[pending.credit_account]
    source.debits_pending -= pending.amount_minor
    target.credits_pending -= pending.amount_minor
    if post:
        source.debits_posted += pending.amount_minor
        target.credits_posted += pending.amount_minor
    pending.status = outcome
    pending.resolved_at = now
    session.add_all([source, target, pending])
    session.flush()
    return pending


def balance(session: Session, key: str) -> Balance:
    """The balance of account ``key``."""
    account = session.get(LedgerAccount, key)
    if account is None:
        raise LedgerError(f"no ledger account {key!r}")
    return Balance(
        account.id,
        account.currency,
        account.credits_posted - account.debits_posted,
        account.debits_pending,
        account.credits_pending,
    )


def transfers_of(
    session: Session, *, job_id: str | None = None, account: str | None = None
) -> list[LedgerTransfer]:
    """Transfers of a job or touching an account, oldest first."""
    statement = select(LedgerTransfer)
    if job_id is not None:
        statement = statement.where(LedgerTransfer.job_id == job_id)
    if account is not None:
        statement = statement.where(
            (col(LedgerTransfer.debit_account) == account)
            | (col(LedgerTransfer.credit_account) == account)
        )
    return list(
        session.exec(statement.order_by(col(LedgerTransfer.created_at), col(LedgerTransfer.id)))
    )


def trial_balance(session: Session) -> dict[str, int]:
    """Per currency, the sum over all accounts of posted credits less posted debits, and
    of pending credits less pending debits: zero, always (a test asserts it after every
    kind of transaction)."""
    rows = session.exec(
        select(
            LedgerAccount.currency,
            func.sum(LedgerAccount.credits_posted - LedgerAccount.debits_posted),
            func.sum(LedgerAccount.credits_pending - LedgerAccount.debits_pending),
        ).group_by(col(LedgerAccount.currency))
    ).all()
    totals: dict[str, int] = {}
    for currency, posted, pending in rows:
        totals[f"{currency}:posted"] = int(posted or 0)
        totals[f"{currency}:pending"] = int(pending or 0)
    return totals
