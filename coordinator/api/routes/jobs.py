"""Jobs: quotes, creation, reads, funding, cancellation and capability tokens."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response
from pydantic import Field
from sqlmodel import Session

from coordinator.accounts import Principal
from coordinator.api.deps import CoordinatorDep, CurrentPrincipal, ReadsDep, SessionDep
from coordinator.api.idempotency import run_idempotent
from coordinator.api.schemas import (
    JobCreate,
    JobOut,
    JobPage,
    JobSpec,
    QuoteResponse,
    Revocation,
    Strict,
    TokenOut,
    TokenRequest,
    decimal_of,
)
from coordinator.api.views import served
from coordinator.database import reading, writing
from coordinator.errors import NotFound
from coordinator.jobs import (
    DatasetRequest,
    JobAudience,
    JobPlan,
    create_job,
    job_audience,
    job_datasets,
    job_events,
    job_view,
    job_views,
    list_jobs,
    price_plan,
    transition_job,
    visible_job,
)
from coordinator.payments import fund_job
from coordinator.service import Coordinator
from coordinator.tables import JOB_STATES, Job
from coordinator.tokens import issue_job_token

router = APIRouter(tags=["jobs"])
JobPath = Annotated[str, Path(pattern=r"^job_[0-9a-f]{26}$")]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=255)]


def _plan(spec: JobSpec) -> JobPlan:
    return JobPlan(
        datasets=tuple(
            DatasetRequest(item.dataset_id, decimal_of(item.target_epsilon), decimal_of(item.delta))
            for item in spec.datasets
        ),
        model=spec.model,
        rounds=spec.rounds,
        local_epochs=spec.local_epochs,
        batch_size=spec.batch_size,
        learning_rate=decimal_of(spec.learning_rate),
        strategy=spec.strategy.name,
        strategy_options=dict(spec.strategy.options),
        min_hosts=spec.min_hosts,
    )


def _full(session: Session, job: Job) -> dict[str, Any]:
    return job_view(job, job_datasets(session, job.id), job_events(session, job.id))


@router.post("/v1/quotes", response_model=QuoteResponse)
def post_quote(
    spec: JobSpec, coordinator: CoordinatorDep, session: SessionDep, principal: CurrentPrincipal
) -> dict[str, Any]:
    """Price a job without creating it (buyers)."""
    principal.require("buyer")
    priced = price_plan(session, _plan(spec), fee_bps=coordinator.config.platform_fee_bps)
    return {"quote": priced.quote.to_dict()}


@router.post("/v1/jobs", status_code=201, response_model=JobOut)
def post_job(
    body: JobCreate,
    coordinator: CoordinatorDep,
    principal: CurrentPrincipal,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Create a draft job; refused (402) when the budget does not cover the quote."""
    principal.require("buyer")
    plan = _plan(body)
    budget = (decimal_of(body.budget.amount), body.budget.currency)

    def action(session: Session) -> tuple[int, Any]:
        job = create_job(
            session,
            coordinator.log,
            coordinator.signing_key,
            principal,
            plan,
            budget=budget,
            fee_bps=coordinator.config.platform_fee_bps,
            development_mode=coordinator.development_mode,
            now=coordinator.now(),
        )
        return 201, _full(session, job)

    return run_idempotent(
        coordinator,
        principal,
        idempotency_key,
        method="POST",
        path="/v1/jobs",
        body=body.model_dump_json(),
        action=action,
    )


@router.get("/v1/jobs", response_model=JobPage)
async def get_jobs(
    coordinator: CoordinatorDep,
    reads: ReadsDep,
    principal: CurrentPrincipal,
    status: Annotated[str | None, Query(pattern="^(" + "|".join(JOB_STATES) + ")$")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> Response:
    """Jobs you may see, newest first: a buyer its own, a creator those funded on its
    datasets, admins and auditors all."""
    # Admins and auditors see the same page; anyone else sees a page of their own.
    viewer = "all" if principal.role in ("admin", "auditor") else principal.account_id
    key = ("jobs", viewer, status, limit, offset)
    body = await reads.get(key, partial(_read_jobs, coordinator, principal, status, limit, offset))
    return Response(body, media_type="application/json")


def _read_jobs(
    coordinator: Coordinator, principal: Principal, status: str | None, limit: int, offset: int
) -> bytes:
    with reading(coordinator.engine) as session:
        jobs, total = list_jobs(session, principal, status=status, limit=limit, offset=offset)
        page = {"items": job_views(session, jobs), "total": total, "limit": limit}
    return served(JobPage, {**page, "offset": offset})


@dataclass(frozen=True)
class _CachedJob:
    """A job's answer as served, and who may be served it."""

    body: bytes
    audience: JobAudience


def _read_job(coordinator: Coordinator, job_id: str) -> _CachedJob | None:
    with reading(coordinator.engine) as session:
        job = session.get(Job, job_id)
        if job is None:
            return None
        return _CachedJob(served(JobOut, _full(session, job)), job_audience(session, job))


@router.get("/v1/jobs/{job_id}", response_model=JobOut)
async def get_job(
    job_id: JobPath, coordinator: CoordinatorDep, reads: ReadsDep, principal: CurrentPrincipal
) -> Response:
    """One job with its datasets, quote and every state transition."""
    cached = await reads.get(("job", job_id), partial(_read_job, coordinator, job_id))
    if not isinstance(cached, _CachedJob) or not cached.audience.may_see(principal):
        raise NotFound(f"no job {job_id!r}")
    return Response(cached.body, media_type="application/json")


def _transition(
    coordinator: CoordinatorDep,
    principal: CurrentPrincipal,
    job_id: str,
    to: str,
    reason: str | None,
) -> dict[str, Any]:
    with writing(coordinator.engine) as session:
        job = transition_job(
            session,
            coordinator.log,
            coordinator.signing_key,
            principal,
            job_id,
            to,
            reason=reason,
            now=coordinator.now(),
        )
        view = _full(session, job)
    coordinator.logged()
    return view


class FundRequest(Strict):
    """How the buyer pays: a payment method of the rail's (Stripe: ``pm_…``)."""

    payment_method: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_]{1,255}$")


class FundOut(JobOut):
    """The job after funding, and the payment's state on the rail (``status``
    ``succeeded``: the hold is placed; ``requires_action``: the buyer confirms the payment
    with ``client_secret`` and the rail's webhook funds the job)."""

    payment: dict[str, Any]


@router.post("/v1/jobs/{job_id}/fund", response_model=FundOut)
def post_fund(
    job_id: JobPath,
    coordinator: CoordinatorDep,
    principal: CurrentPrincipal,
    body: FundRequest | None = None,
) -> JSONResponse:
    """Fund a draft job (its buyer) through the payment rail: every dataset's terms are
    checked again, and the quote is collected and placed in the job's hold. 202 when the
    payment waits for the buyer."""
    payment = fund_job(coordinator, principal, job_id, body.payment_method if body else None)
    with reading(coordinator.engine) as session:
        view = _full(session, visible_job(session, principal, job_id))
    status = 200 if payment["status"] == "succeeded" else 202
    return JSONResponse(jsonable_encoder({**view, "payment": payment}), status_code=status)


@router.post("/v1/jobs/{job_id}/cancel", response_model=JobOut)
def post_cancel(
    job_id: JobPath,
    coordinator: CoordinatorDep,
    principal: CurrentPrincipal,
    body: Revocation | None = None,
) -> dict[str, Any]:
    """Cancel a job that has not ended (its buyer or an admin)."""
    principal.require("buyer", "admin")
    reason = body.reason if body is not None and body.reason else None
    return _transition(coordinator, principal, job_id, "cancelled", reason)


@router.post("/v1/jobs/{job_id}/tokens", status_code=201, response_model=TokenOut)
def post_token(
    job_id: JobPath,
    body: TokenRequest,
    coordinator: CoordinatorDep,
    principal: CurrentPrincipal,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Issue the capability token for one dataset of a funded job (its creator, or admins)."""

    def action(session: Session) -> tuple[int, Any]:
        token, claims = issue_job_token(
            session,
            coordinator.signing_key,
            principal,
            job_id,
            body.dataset_id,
            policy=coordinator.attestation_policy(),
            ttl=coordinator.token_ttl,
            now=coordinator.now(),
        )
        return 201, {
            "token": token,
            "jti": claims.jti,
            "expires_at": claims.expires_at.isoformat(),
            "host_did": claims.subject,
            "worker_jkt": claims.worker_jkt,
            "insecure_attestation": claims.insecure_attestation,
        }

    return run_idempotent(
        coordinator,
        principal,
        idempotency_key,
        method="POST",
        path=f"/v1/jobs/{job_id}/tokens",
        body=body.model_dump_json(),
        action=action,
    )
