"""``tally dispute open|show|resolve``: contest what a job or a round was paid.

A job's buyer, or a creator whose dataset it used, opens a dispute with a reason; the
royalties the disputed work paid are frozen in the dispute's reserve. An admin resolves
it: ``release`` pays the frozen money back to its payees, ``refund`` pays it to the buyer.
Opening and resolving are each logged by the coordinator.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from clients.cli.output import JsonFlag, console, emit_json
from clients.cli.remote import (
    DEFAULT_COORDINATOR,
    ApiKeyOption,
    CoordinatorOption,
    coordinator_client,
    money,
    plain,
)

app = typer.Typer(
    help="Open, show and resolve disputes over what a job paid.", no_args_is_help=True
)
DisputeArgument = Annotated[str, typer.Argument(help="The dispute id (dsp_…).")]


def _show(view: dict[str, Any]) -> None:
    table = Table(title=f"Dispute {view['id']}", show_header=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    currency = view["currency"]
    table.add_row("job", plain(view["job_id"]))
    table.add_row("round", plain(view["round"] if view["round"] is not None else "all"))
    table.add_row("status", plain(view["status"]))
    table.add_row("reason", plain(view["reason"]))
    table.add_row("frozen", money(view["frozen_minor"], currency))
    for account, amount in view["frozen"].items():
        table.add_row("", plain(f"{account}: {money(amount, currency)}"))
    if view.get("resolution"):
        table.add_row("resolution", plain(view["resolution"]))
    console.print(table)


@app.command("open")
def open_command(
    job: Annotated[str, typer.Option("--job", help="The job whose payments you dispute.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (logged; keep secrets out).")],
    round_number: Annotated[
        int | None, typer.Option("--round", min=1, help="One round only (default: the job).")
    ] = None,
    coordinator: CoordinatorOption = DEFAULT_COORDINATOR,
    api_key: ApiKeyOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Open a dispute on a job or one of its rounds; what it paid is frozen.

    Example: tally dispute open --job job_01hx2c3d4e5f6g7h8j9k0m1n2p --round 2 --reason "bad labels"
    """
    with coordinator_client(coordinator, api_key) as client:
        view = client.open_dispute(job, reason, round_number=round_number)
    if as_json:
        emit_json(view)
    else:
        _show(view)


@app.command("show")
def show_command(
    dispute_id: DisputeArgument,
    coordinator: CoordinatorOption = DEFAULT_COORDINATOR,
    api_key: ApiKeyOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Show a dispute and what it froze.

    Example: tally dispute show dsp_01hx2c3d4e5f6g7h8j9k0m1n2p
    """
    with coordinator_client(coordinator, api_key) as client:
        view = client.dispute(dispute_id)
    if as_json:
        emit_json(view)
    else:
        _show(view)


@app.command("resolve")
def resolve_command(
    dispute_id: DisputeArgument,
    outcome: Annotated[
        str, typer.Option("--outcome", help="release (to the payees) or refund (to the buyer).")
    ],
    note: Annotated[str, typer.Option("--note", help="The resolution, as it will be logged.")],
    coordinator: CoordinatorOption = DEFAULT_COORDINATOR,
    api_key: ApiKeyOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Resolve an open dispute (admins): release or refund what it froze.

    Example: tally dispute resolve dsp_01hx2c3d4e5f6g7h8j9k0m1n2p --outcome refund --note ok
    """
    with coordinator_client(coordinator, api_key) as client:
        view = client.resolve_dispute(dispute_id, outcome, note)
    if as_json:
        emit_json(view)
    else:
        _show(view)
