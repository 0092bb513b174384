"""``tally job start|watch|model``: run a funded job's training and follow it round by round.

``start`` asks the coordinator to submit the job to its SuperLink; ``watch`` polls the
job's rounds and shows each as it lands (loss, accuracy, ε per dataset, samples metered,
cost so far, accepted and dropped hosts with the reasons, the round proof's log index);
``model`` writes the trained model (``.npz``) and its model card beside it. These commands
only show what the coordinator answers; the proofs themselves are checked by
``tally verify`` and the auditor's tools.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from clients.cli.job import JobArgument, app
from clients.cli.output import JsonFlag, console, emit_json, fail
from clients.cli.remote import (
    DEFAULT_COORDINATOR,
    ApiKeyOption,
    CoordinatorOption,
    coordinator_client,
    money,
    plain,
)
from clients.sdk import TallyClient

#: Job states after which nothing more happens.
ENDED = ("completed", "failed", "cancelled")
_POLL_SECONDS = 1.0


@app.command("start")
def start(
    job_id: JobArgument,
    node_wait: Annotated[
        float, typer.Option(min=1, help="Seconds to wait for the job's hosts to connect.")
    ] = 120.0,
    round_timeout: Annotated[
        float, typer.Option(min=1, help="Seconds each round waits for the hosts' replies.")
    ] = 600.0,
    coordinator: CoordinatorOption = DEFAULT_COORDINATOR,
    api_key: ApiKeyOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Start training a funded job on the coordinator's SuperLink.

    Example: tally job start job_01hx2c3d4e5f6g7h8j9k0m1n2p --node-wait 60
    """
    with coordinator_client(coordinator, api_key) as client:
        run = client.start_job(
            job_id, node_wait_seconds=node_wait, round_timeout_seconds=round_timeout
        )
    if as_json:
        emit_json(run)
        return
    console.print(
        plain(
            f"{run.get('job_id')} is {run.get('status')}: Flower run {run.get('flower_run_id')}, "
            f"app bundle {str(run.get('fab_hash'))[:16]}…; follow it with tally job watch"
        )
    )


def round_row(summary: dict[str, Any], currency: str) -> list[str]:
    """One round as table cells: round, loss, accuracy, ε, samples, cost, hosts, proof."""
    metrics = summary.get("metrics") or {}
    epsilon = summary.get("epsilon") or {}
    rejected = summary.get("rejected") or []
    dropped = "; ".join(
        f"{item.get('dataset_id')!s}: {str(item.get('reason'))[:80]}" for item in rejected
    )
    return [
        str(summary.get("round")),
        str(summary.get("status")),
        str(metrics.get("train_loss", "-")),
        str(metrics.get("eval_accuracy", "-")),
        ", ".join(f"{key[:10]}… {value}" for key, value in sorted(epsilon.items())) or "-",
        str(summary.get("samples", 0)),
        money(summary.get("cost_minor", 0), currency),
        f"{len(summary.get('accepted') or [])} accepted"
        + (f", {len(rejected)} dropped ({dropped})" if rejected else ""),
        str(summary.get("proof_log_index", "-")),
    ]


def rounds_table(run: dict[str, Any], currency: str) -> Table:
    """The run's rounds as a Rich table."""
    table = Table(title=f"job {run.get('job_id')}: {run.get('status')}")
    for column in (
        "round", "status", "train loss", "held-out acc.", "ε so far", "samples", "cost",
        "hosts", "proof",
    ):  # fmt: skip
        table.add_column(column, overflow="fold")
    for summary in run.get("rounds") or []:
        table.add_row(*(plain(cell) for cell in round_row(summary, currency)))
    return table


def follow(client: TallyClient, job_id: str, *, timeout: float, quiet: bool) -> dict[str, Any]:
    """Poll the job's rounds until it ends (or ``timeout`` seconds pass); show progress."""
    job = client.get_job(job_id)
    currency = str((job.get("budget") or {}).get("currency", "USD"))
    deadline = time.monotonic() + timeout
    shown = 0
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=quiet,
    ) as progress:
        task = progress.add_task(f"training {job_id}", total=int(job.get("rounds", 1)))
        while True:
            run = client.job_rounds(job_id)
            rounds = run.get("rounds") or []
            for summary in rounds[shown:]:
                cells = round_row(summary, currency)
                progress.console.print(
                    plain(
                        f"round {cells[0]} {cells[1]}: loss {cells[2]}, held-out accuracy "
                        f"{cells[3]}, ε {cells[4]}, {cells[5]} samples, {cells[6]}; {cells[7]}; "
                        f"proof at log index {cells[8]}"
                    )
                )
            shown = len(rounds)
            progress.update(
                task, completed=len(rounds), description=f"{job_id}: {run.get('status')}"
            )
            if run.get("status") in ENDED:
                return run
            if time.monotonic() >= deadline:
                fail(f"job {job_id} is still {run.get('status')} after {timeout:g} s")
            time.sleep(_POLL_SECONDS)


@app.command("watch")
def watch(
    job_id: JobArgument,
    timeout: Annotated[
        float, typer.Option(min=1, help="Give up after this many seconds (exit 1).")
    ] = 3600.0,
    coordinator: CoordinatorOption = DEFAULT_COORDINATOR,
    api_key: ApiKeyOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Follow a job's training round by round until it ends; exit 1 if it failed.

    Example: tally job watch job_01hx2c3d4e5f6g7h8j9k0m1n2p --timeout 600
    """
    with coordinator_client(coordinator, api_key) as client:
        run = follow(client, job_id, timeout=timeout, quiet=as_json)
        currency = str((client.get_job(job_id).get("budget") or {}).get("currency", "USD"))
    if as_json:
        emit_json(run)
    else:
        console.print(rounds_table(run, currency))
    if run.get("status") != "completed":
        fail(f"job {job_id} {run.get('status')}: {run.get('status_reason') or 'no reason given'}")


@app.command("model")
def model(
    job_id: JobArgument,
    out: Annotated[
        Path, typer.Option(help="Where to write the model (.npz); the card goes beside it.")
    ],
    coordinator: CoordinatorOption = DEFAULT_COORDINATOR,
    api_key: ApiKeyOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Download the trained model and its model card (datasets, ε spent, rounds, proofs).

    Example: tally job model job_01hx2c3d4e5f6g7h8j9k0m1n2p --out model.npz
    """
    with coordinator_client(coordinator, api_key) as client:
        answer = client.job_model(job_id)
    try:
        data = base64.b64decode(str(answer["npz_base64"]), validate=True)
    except (KeyError, ValueError) as exc:
        fail(f"the coordinator's model answer is malformed: {exc}")
    import hashlib

    card = answer.get("card") or {}
    card_path = out.with_suffix(".card.json")
    out.write_bytes(data)
    card_path.write_text(json.dumps(card, indent=2, sort_keys=True) + "\n")
    result = {
        "model": str(out),
        "card": str(card_path),
        "model_digest": answer.get("model_digest"),
        "npz_sha256": hashlib.sha256(data).hexdigest(),
    }
    if as_json:
        emit_json(result)
        return
    console.print(plain(f"wrote {out} and {card_path} (model digest {answer.get('model_digest')})"))
