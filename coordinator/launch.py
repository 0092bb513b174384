"""Starting a funded job's training run on the coordinator's SuperLink.

``start_job`` moves the job to ``running`` (logged), records the run, and submits the
shipped Flower app with ``flwr run`` through the coordinator's private Flower connection,
with the run config naming the job and the coordinator home; the SuperLink then starts
the ServerApp (``coordinator.server_app``). If the submission fails, the job is failed
with the reason at once: a job is never left ``running`` without a run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from coordinator.accounts import Principal
from coordinator.database import writing
from coordinator.errors import Conflict, UpstreamError
from coordinator.home import CoordinatorHome
from coordinator.jobs import transition_job, visible_job
from coordinator.service import Coordinator
from coordinator.superlink import SuperLinkError, SuperLinkSettings, SuperLinkTls
from coordinator.supernodes import FlowerConnection
from coordinator.tables import JobRun
from coordinator.training import RunSettings, finish_job


@dataclass(frozen=True)
class StartedRun:
    """A submitted run: the job, Flower's run id and the app bundle's hash."""

    job_id: str
    flower_run_id: str
    fab_hash: str


def superlink_settings(home: CoordinatorHome, port: int | None = None) -> SuperLinkSettings:
    """How ``home``'s SuperLink runs (``port`` overrides the configured one)."""
    link = home.config.superlink
    tls = link.tls
    return SuperLinkSettings(
        host=link.host,
        port=port or link.port,
        database=home.root / "superlink" / "state.db",
        tls=None
        if tls is None
        else SuperLinkTls(Path(tls.ca_certfile), Path(tls.certfile), Path(tls.keyfile)),
        supernode_auth=link.supernode_auth,
        log_file=home.root / "logs" / "superlink.log",
        flwr_home=home.root / "superlink" / "flwr",
    )


def shipped_app() -> tuple[Path, str]:
    """The Flower app shipped with Tallystick (``data_host/flower_app``) and its bundle hash.

    ``coordinator`` and ``data_host`` are installed side by side by one distribution, so
    the app is found beside this package, without importing ``data_host`` (the
    coordinator does not depend on it). Its hash is what ``flwr build`` gives it, exactly
    as data hosts compute it for their allow-lists.
    """
    import hashlib

    from flwr.cli.build import build_fab_from_disk

    app_dir = Path(__file__).resolve().parent.parent / "data_host" / "flower_app"
    if not (app_dir / "pyproject.toml").is_file():
        raise UpstreamError(f"this installation ships no Flower app (looked in {app_dir})")
    return app_dir, hashlib.sha256(build_fab_from_disk(app_dir)).hexdigest()


def _run_config(values: dict[str, str | float]) -> str:
    return " ".join(f"{key}={json.dumps(value)}" for key, value in values.items())


def start_job(
    coordinator: Coordinator,
    principal: Principal,
    job_id: str,
    *,
    app_dir: Path,
    fab_hash: str,
    settings: RunSettings | None = None,
    superlink: SuperLinkSettings | None = None,
) -> StartedRun:
    """Start ``job_id`` (funded) as a Flower run; see the module docstring."""
    settings = settings or RunSettings()
    with writing(coordinator.engine) as session:
        job = visible_job(session, principal, job_id, lock=True)
        if principal.role == "buyer" and job.buyer_id != principal.account_id:
            raise Conflict(f"job {job_id} is not yours to start")
        transition_job(
            session,
            coordinator.log,
            coordinator.signing_key,
            principal,
            job_id,
            "running",
            reason="training started",
            now=coordinator.now(),
        )
        session.add(JobRun(job_id=job_id, fab_hash=fab_hash, started_at=coordinator.now()))
    coordinator.logged()
    connection = FlowerConnection.write(
        coordinator.home.root / "flwr", superlink or superlink_settings(coordinator.home)
    )
    config = _run_config(
        {
            "job-id": job_id,
            "coordinator-home": str(coordinator.home.root),
            "node-wait": settings.node_wait,
            "round-timeout": settings.round_timeout,
        }
    )
    try:
        answer = connection.run("run", str(app_dir), "--run-config", config)
        run_id = str(int(answer["run-id"]))
    except (SuperLinkError, KeyError, TypeError, ValueError) as exc:
        finish_job(coordinator, job_id, failed=f"the run could not be submitted: {exc}"[:1000])
        raise UpstreamError(f"job {job_id}: the SuperLink did not take the run: {exc}") from exc
    with writing(coordinator.engine) as session:
        run = session.get(JobRun, job_id)
        if run is not None:
            run.flower_run_id = run_id
            session.add(run)
    return StartedRun(job_id, run_id, fab_hash)
