"""What the ledger shows each party: balances, and a job's statement of money moved.

- ``balances_view``: a creator or buyer sees its own payable accounts (royalties owed, or
  refunds owed); a buyer also sees the holds of its jobs; admins and auditors see every
  account and the trial balance (which is always zero per currency).
- ``job_statement``: every transfer of one job (hold, royalties, fees, release), oldest
  first, with totals: held, settled per payee, fees, released, and what the hold has left.
  The job's buyer, the creators of its datasets, admins and auditors may read it; a
  creator sees only the royalty lines that pay it.
- ``creator_statement``: every transfer into or out of one creator's payable accounts,
  across jobs (royalties earned, disputes, payouts made), with totals per job. The
  creator itself, admins and auditors may read it.

Amounts are integer minor units (strings in JSON, so that no reader rounds them).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlmodel import Session, col, select

from billing.ledger import AccountKind, balance, transfers_of, trial_balance
from billing.settlement import hold_account
from billing.tables import LedgerAccount, LedgerTransfer
from coordinator.accounts import Principal
from coordinator.errors import NotFound
from coordinator.jobs import visible_job
from coordinator.tables import Account, Job


def _account_view(account: LedgerAccount) -> dict[str, Any]:
    return {
        "account": account.id,
        "kind": account.kind,
        "owner": account.owner,
        "currency": account.currency,
        "posted_minor": str(account.credits_posted - account.debits_posted),
        "pending_debits_minor": str(account.debits_pending),
        "pending_credits_minor": str(account.credits_pending),
    }


def balances_view(session: Session, principal: Principal) -> dict[str, Any]:
    """The ledger accounts ``principal`` may see, with their balances."""
    statement = select(LedgerAccount).order_by(col(LedgerAccount.id))
    if principal.role in ("creator", "buyer"):
        owners = [principal.account_id]
        if principal.role == "buyer":
            owners += list(session.exec(select(Job.id).where(Job.buyer_id == principal.account_id)))
        statement = statement.where(col(LedgerAccount.owner).in_(owners))
    accounts = [_account_view(account) for account in session.exec(statement)]
    view: dict[str, Any] = {"accounts": accounts}
    if principal.role in ("admin", "auditor"):
        view["trial_balance"] = {key: str(value) for key, value in trial_balance(session).items()}
    return view


def _line(item: LedgerTransfer) -> dict[str, Any]:
    return {
        "transfer": item.id,
        "job": item.job_id,
        "kind": item.kind,
        "round": item.round_number,
        "from": item.debit_account,
        "to": item.credit_account,
        "amount_minor": str(item.amount_minor),
        "status": item.status,
        "reference": item.reference,
        "at": item.created_at.isoformat(),
    }


def creator_statement(session: Session, principal: Principal, account_id: str) -> dict[str, Any]:
    """The money that moved for creator ``account_id`` (see the module docstring)."""
    if principal.role not in ("admin", "auditor") and principal.account_id != account_id:
        raise NotFound(f"no creator statement for {account_id} that you may see")
    owned = list(
        session.exec(
            select(LedgerAccount).where(
                LedgerAccount.owner == account_id,
                LedgerAccount.kind == AccountKind.PAYABLE.value,
            )
        )
    )
    if not owned and session.get(Account, account_id) is None:
        raise NotFound(f"no account {account_id}")
    keys = {account.id for account in owned}
    lines = []
    jobs: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for key in sorted(keys):
        for item in transfers_of(session, account=key):
            if item.status == "voided":
                continue
            lines.append(_line(item))
            sign = 1 if item.credit_account in keys else -1
            jobs[item.job_id or "-"][item.kind] += sign * item.amount_minor
    lines.sort(key=lambda line: (line["at"], line["transfer"]))
    return {
        "account_id": account_id,
        "lines": lines,
        "jobs": {
            job: {kind: str(amount) for kind, amount in sorted(kinds.items())}
            for job, kinds in sorted(jobs.items())
        },
        "accounts": [_account_view(account) for account in owned],
    }


def job_statement(session: Session, principal: Principal, job_id: str) -> dict[str, Any]:
    """The money ``job_id`` moved (see the module docstring)."""
    job = visible_job(session, principal, job_id)
    own_lines_only = principal.role == "creator"
    mine = f"payable:{principal.account_id}:{job.currency}"
    lines = []
    totals: dict[str, int] = defaultdict(int)
    payees: dict[str, int] = defaultdict(int)
    for item in transfers_of(session, job_id=job.id):
        if item.status != "posted":
            continue
        totals[item.kind] += item.amount_minor
        if item.kind == "royalty":
            payees[item.credit_account] += item.amount_minor
        if own_lines_only and item.credit_account != mine:
            continue
        lines.append(_line(item))
    hold = hold_account(job.id, job.currency)
    view: dict[str, Any] = {
        "job_id": job.id,
        "currency": job.currency,
        "lines": lines,
    }
    if own_lines_only:
        view["paid_to_you_minor"] = str(payees.get(mine, 0))
        return view
    exists = session.get(LedgerAccount, hold) is not None
    view.update(
        {
            "held_minor": str(totals["hold"]),
            "royalties_minor": str(totals["royalty"]),
            "fees_minor": str(totals["fee"]),
            "released_minor": str(totals["release"]),
            "hold_left_minor": str(balance(session, hold).available if exists else 0),
            "payees": {account: str(amount) for account, amount in sorted(payees.items())},
        }
    )
    return view
