"""The coordinator's Flower ServerApp: runs one job, named by the run config.

``tally job start`` submits the shipped app to the SuperLink with the run config
``job-id`` and ``coordinator-home``; the SuperLink's SuperExec starts this ServerApp in a
process of its own on the coordinator's machine. It opens the coordinator home (keys,
database, log), trains the job (``coordinator.training``) and ends it: completed, or
failed with the reason, each transition logged.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from coordinator.home import open_coordinator_home
from coordinator.service import open_coordinator
from coordinator.training import JobTrainer, RunSettings, finish_job

_log = logging.getLogger(__name__)

app = ServerApp()

#: The environment variable that overrides the coordinator's database URL (as ``up`` does).
DATABASE_URL_ENV = "TALLY_COORDINATOR_DATABASE_URL"


def _setting(context: Context, key: str, default: float) -> float:
    value = context.run_config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ValueError(f"run config {key!r} must be a positive number, got {value!r}")
    return float(value)


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Train the job named by ``job-id`` with the coordinator at ``coordinator-home``."""
    run_job(grid, context, JobTrainer)


def run_job(grid: Grid, context: Context, trainer: type[JobTrainer]) -> None:
    """Open the coordinator the run config names, train its job with ``trainer`` and end
    the job (completed, or failed with the reason)."""
    job_id = str(context.run_config.get("job-id", ""))
    home = str(context.run_config.get("coordinator-home", ""))
    if not job_id or not home:
        raise ValueError("run config must name job-id and coordinator-home")
    settings = RunSettings(
        node_wait=_setting(context, "node-wait", RunSettings.node_wait),
        round_timeout=_setting(context, "round-timeout", RunSettings.round_timeout),
    )
    coordinator = open_coordinator(
        open_coordinator_home(Path(home)), database_url=os.environ.get(DATABASE_URL_ENV) or None
    )
    try:
        try:
            trainer(coordinator, grid, job_id, settings).run()
        except Exception as exc:
            _log.exception("job %s failed", job_id)
            finish_job(coordinator, job_id, failed=f"{type(exc).__name__}: {exc}"[:1000])
            raise
        finish_job(coordinator, job_id, failed=None)
    finally:
        coordinator.close()
