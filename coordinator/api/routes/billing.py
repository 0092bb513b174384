"""Billing: ledger balances, a job's statement of the money it moved, and disputes."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path
from pydantic import Field

from coordinator.api.deps import CoordinatorDep, CurrentPrincipal, SessionDep
from coordinator.api.schemas import Open, Strict
from coordinator.billing_views import balances_view, job_statement
from coordinator.database import writing
from coordinator.disputes import (
    dispute_view,
    open_job_dispute,
    resolve_job_dispute,
    visible_dispute,
)

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


class DisputeRequest(Strict):
    """Open a dispute on a job, or on one of its settled rounds."""

    round: int | None = Field(default=None, ge=1, le=10_000)
    reason: str = Field(min_length=1, max_length=2000)


class ResolveRequest(Strict):
    """Resolve a dispute: ``release`` the frozen money to its payees or ``refund`` it."""

    outcome: Literal["release", "refund"]
    note: str = Field(min_length=1, max_length=2000)


class DisputeOut(Open):
    """A dispute and what it froze, per payee account."""

    id: str
    job_id: str
    status: str
    frozen_minor: str


DisputePath = Annotated[str, Path(pattern=r"^dsp_[0-9a-f]{26}$")]


@router.post("/v1/jobs/{job_id}/disputes", status_code=201, response_model=DisputeOut)
def post_dispute(
    job_id: JobPath, body: DisputeRequest, coordinator: CoordinatorDep, principal: CurrentPrincipal
) -> dict[str, Any]:
    """Open a dispute (the job's buyer, a creator of its datasets, or an admin): what the
    disputed work paid is frozen until an admin resolves it."""
    with writing(coordinator.engine) as session:
        view = open_job_dispute(
            session, coordinator.log, coordinator.signing_key, principal, job_id,
            round_number=body.round, reason=body.reason, now=coordinator.now(),
        )  # fmt: skip
    coordinator.logged()
    return view


@router.get("/v1/disputes/{dispute_id}", response_model=DisputeOut)
def get_dispute(
    dispute_id: DisputePath, session: SessionDep, principal: CurrentPrincipal
) -> dict[str, Any]:
    """A dispute on a job you may see."""
    return dispute_view(session, visible_dispute(session, principal, dispute_id))


@router.post("/v1/disputes/{dispute_id}/resolve", response_model=DisputeOut)
def post_resolve(
    dispute_id: DisputePath,
    body: ResolveRequest,
    coordinator: CoordinatorDep,
    principal: CurrentPrincipal,
) -> dict[str, Any]:
    """Resolve an open dispute (admins): release to the payees or refund to the buyer."""
    with writing(coordinator.engine) as session:
        view = resolve_job_dispute(
            session, coordinator.log, coordinator.signing_key, principal, dispute_id,
            outcome=body.outcome, note=body.note, now=coordinator.now(),
        )  # fmt: skip
    coordinator.logged()
    return view
