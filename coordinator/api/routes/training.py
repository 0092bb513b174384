"""Training: start a funded job on the SuperLink, follow its rounds, fetch the model."""

from __future__ import annotations

import base64
import json
from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import Field

from coordinator.api.deps import CoordinatorDep, CurrentPrincipal
from coordinator.api.schemas import Open, Strict
from coordinator.database import reading
from coordinator.errors import Conflict, NotFound
from coordinator.jobs import job_audience
from coordinator.launch import shipped_app, start_job
from coordinator.tables import Job, JobModel, JobRun
from coordinator.training import RunSettings, job_rounds

router = APIRouter(tags=["training"])
JobPath = Annotated[str, Path(pattern=r"^job_[0-9a-f]{26}$")]


class StartRequest(Strict):
    """How long the run waits for hosts to connect, and for each round's replies."""

    node_wait_seconds: float = Field(default=RunSettings.node_wait, ge=1, le=3600)
    round_timeout_seconds: float = Field(default=RunSettings.round_timeout, ge=1, le=86400)


class RunOut(Open):
    """A job's run: its state and every recorded round."""

    job_id: str
    status: str
    status_reason: str | None
    rounds_planned: int
    current_round: int
    flower_run_id: str | None
    fab_hash: str | None
    started_at: str | None
    finished_at: str | None
    rounds: list[dict[str, Any]]


class ModelOut(Open):
    """The trained model (``.npz``, base64) and its model card."""

    job_id: str
    model_digest: str
    card: dict[str, Any]
    npz_base64: str


def _visible(session: Any, principal: Any, job_id: str) -> Job:
    job: Job | None = session.get(Job, job_id)
    if job is None or not job_audience(session, job).may_see(principal):
        raise NotFound(f"no job {job_id!r}")
    return job


def _run_view(session: Any, job: Job) -> dict[str, Any]:
    run = session.get(JobRun, job.id)
    return {
        "job_id": job.id,
        "status": job.status,
        "status_reason": job.status_reason,
        "rounds_planned": job.rounds,
        "current_round": run.current_round if run is not None else 0,
        "flower_run_id": run.flower_run_id if run is not None else None,
        "fab_hash": run.fab_hash if run is not None else None,
        "started_at": run.started_at.isoformat() if run is not None else None,
        "finished_at": run.finished_at.isoformat() if run and run.finished_at else None,
        "rounds": [json.loads(row.summary) for row in job_rounds(session, job.id)],
    }


@router.post("/v1/jobs/{job_id}/start", status_code=202, response_model=RunOut)
def post_start(
    job_id: JobPath,
    coordinator: CoordinatorDep,
    principal: CurrentPrincipal,
    body: StartRequest | None = None,
) -> dict[str, Any]:
    """Start training a funded job (its buyer, or an admin): the job becomes running and
    its run is submitted to the SuperLink."""
    principal.require("buyer", "admin")
    request = body or StartRequest()
    app_dir, fab_hash = shipped_app()
    start_job(
        coordinator,
        principal,
        job_id,
        app_dir=app_dir,
        fab_hash=fab_hash,
        settings=RunSettings(request.node_wait_seconds, request.round_timeout_seconds),
        superlink=coordinator.superlink,
    )
    with reading(coordinator.engine) as session:
        return _run_view(session, _visible(session, principal, job_id))


@router.get("/v1/jobs/{job_id}/rounds", response_model=RunOut)
def get_rounds(
    job_id: JobPath, coordinator: CoordinatorDep, principal: CurrentPrincipal
) -> dict[str, Any]:
    """A job's run and its rounds so far: metrics, accepted and rejected hosts, ε per
    dataset, samples metered, cost and each round proof's log index."""
    with reading(coordinator.engine) as session:
        return _run_view(session, _visible(session, principal, job_id))


@router.get("/v1/jobs/{job_id}/model", response_model=ModelOut)
def get_model(
    job_id: JobPath, coordinator: CoordinatorDep, principal: CurrentPrincipal
) -> dict[str, Any]:
    """The trained model and its card (the job's buyer, admins and auditors)."""
    principal.require("buyer", "admin", "auditor")
    with reading(coordinator.engine) as session:
        job = _visible(session, principal, job_id)
        model = session.get(JobModel, job.id)
        if model is None:
            raise Conflict(f"job {job.id} is {job.status}; it has no trained model yet")
        return {
            "job_id": job.id,
            "model_digest": model.model_digest,
            "card": json.loads(model.card),
            "npz_base64": base64.b64encode(model.arrays).decode("ascii"),
        }
