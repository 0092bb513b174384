"""Billing: ledger balances and a job's statement of the money it moved."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path

from coordinator.api.deps import CurrentPrincipal, SessionDep
from coordinator.api.schemas import Open
from coordinator.billing_views import balances_view, job_statement

router = APIRouter(tags=["billing"])
JobPath = Annotated[str, Path(pattern=r"^job_[0-9a-f]{26}$")]


class BalancesOut(Open):
    """Ledger accounts the caller may see (and, for admins and auditors, the trial balance)."""

    accounts: list[dict[str, Any]]
    trial_balance: dict[str, str] | None = None


class StatementOut(Open):
    """The transfers of one job, with totals (a creator sees the lines that pay it)."""

    job_id: str
    currency: str
    lines: list[dict[str, Any]]


@router.get("/v1/billing/balances", response_model=BalancesOut, response_model_exclude_none=True)
def get_balances(session: SessionDep, principal: CurrentPrincipal) -> dict[str, Any]:
    """Your ledger accounts: royalties or refunds owed to you, your jobs' holds; admins
    and auditors see every account and the trial balance."""
    return balances_view(session, principal)


@router.get("/v1/jobs/{job_id}/statement", response_model=StatementOut)
def get_statement(
    job_id: JobPath, session: SessionDep, principal: CurrentPrincipal
) -> dict[str, Any]:
    """Every transfer of a job: its hold, each round's royalties and fee, the release."""
    return job_statement(session, principal, job_id)
