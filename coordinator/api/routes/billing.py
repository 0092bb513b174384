"""Billing: ledger balances, a job's statement of the money it moved, disputes, and the
payment rail: payouts, reconciliation, creator onboarding, rail webhooks."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Path, Request
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from coordinator.api.deps import CoordinatorDep, CurrentPrincipal, SessionDep
from coordinator.api.schemas import Open, Strict
from coordinator.billing_views import balances_view, creator_statement, job_statement
from coordinator.database import writing
from coordinator.disputes import (
    dispute_view,
    open_job_dispute,
    resolve_job_dispute,
    visible_dispute,
)
from coordinator.payments import (
    handle_webhook,
    onboard,
    rail_operations,
    reconcile,
    run_payouts,
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


class CreatorStatementOut(Open):
    """The transfers into and out of one creator's payables, with totals per job."""

    account_id: str
    lines: list[dict[str, Any]]
    jobs: dict[str, dict[str, str]]
    accounts: list[dict[str, Any]]


@router.get("/v1/billing/creators/{account_id}/statement", response_model=CreatorStatementOut)
def get_creator_statement(
    account_id: Annotated[str, Path(pattern=r"^acct_[0-9a-f]{26}$")],
    session: SessionDep,
    principal: CurrentPrincipal,
) -> dict[str, Any]:
    """A creator's royalties, disputes and payouts across jobs (the creator, admins, auditors)."""
    return creator_statement(session, principal, account_id)


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


class PayoutReportOut(Open):
    """What a payout or reconcile run did, and the payout statement it signed and logged."""

    rail: str
    paid: list[dict[str, Any]]
    funded: list[dict[str, Any]]
    failed: list[dict[str, Any]]
    waiting: list[dict[str, Any]]
    skipped: list[dict[str, Any]]
    statement: dict[str, Any] | None
    log_index: int | None


@router.post("/v1/billing/payouts", response_model=PayoutReportOut)
def post_payouts(coordinator: CoordinatorDep, principal: CurrentPrincipal) -> dict[str, Any]:
    """Pay everything owed (admins): creators' royalties through the configured rail,
    released holds back to buyers through the rail that collected them. Operations an
    earlier run left unanswered are reconciled first."""
    return run_payouts(coordinator, principal).to_dict()


@router.post("/v1/billing/reconcile", response_model=PayoutReportOut)
def post_reconcile(coordinator: CoordinatorDep, principal: CurrentPrincipal) -> dict[str, Any]:
    """Settle rail operations a crashed run left pending, by their idempotency keys (admins)."""
    return reconcile(coordinator, principal).to_dict()


class OnboardingRequest(Strict):
    """Start or continue a creator's onboarding to the payment rail."""

    email: str | None = Field(default=None, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class OnboardingOut(Open):
    """The creator's rail account and the link that finishes its onboarding."""

    rail: str
    account: str
    url: str
    payouts_enabled: bool


@router.post("/v1/billing/onboarding", response_model=OnboardingOut)
def post_onboarding(
    coordinator: CoordinatorDep, principal: CurrentPrincipal, body: OnboardingRequest | None = None
) -> dict[str, Any]:
    """Your payout account on the rail (made once) and a fresh onboarding link (creators)."""
    return onboard(coordinator, principal, body.email if body is not None else None)


@router.get("/v1/jobs/{job_id}/payments")
def get_payments(
    job_id: JobPath, coordinator: CoordinatorDep, principal: CurrentPrincipal
) -> dict[str, Any]:
    """The rail operations of a job: its funding, payouts and refunds, with the rail's ids."""
    return {"job_id": job_id, "operations": rail_operations(coordinator, principal, job_id)}


class WebhookOut(Open):
    """What the coordinator did with a webhook event."""

    event: str
    duplicate: bool
    outcome: str


@router.post("/v1/billing/webhooks/{rail}", response_model=WebhookOut)
async def post_webhook(
    rail: Annotated[str, Path(pattern=r"^[a-z]{1,16}$")],
    request: Request,
    coordinator: CoordinatorDep,
    stripe_signature: Annotated[str | None, Header(max_length=4096)] = None,
) -> dict[str, Any]:
    """A payment rail's webhook (no API key: the event's signature is checked against the
    endpoint secret, and each event id is applied once)."""
    payload = await request.body()
    return await run_in_threadpool(handle_webhook, coordinator, rail, payload, stripe_signature)
