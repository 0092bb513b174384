"""``tally billing balance|statement``: the ledger as the coordinator shows it to you.

``balance`` lists your ledger accounts (royalties owed to a creator, refunds owed to a
buyer, a buyer's job holds; admins and auditors see every account and the trial balance,
which is zero per currency). ``statement --job J`` lists every transfer of one job: its
hold, each round's royalties and platform fee, the release of what was not spent; as a
table, JSON or CSV. These commands show what the coordinator answers; the settlement
records themselves are in the transparency log, next to the round proofs they settle.
"""

from __future__ import annotations

import csv
import sys
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
    help="Ledger balances and job statements (money follows the round proofs).",
    no_args_is_help=True,
)
_CSV_COLUMNS = ("transfer", "kind", "round", "from", "to", "amount_minor", "reference", "at")


@app.command("balance")
def balance_command(
    coordinator: CoordinatorOption = DEFAULT_COORDINATOR,
    api_key: ApiKeyOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Show your ledger accounts and their balances.

    Example: tally billing balance --coordinator http://127.0.0.1:8400
    """
    with coordinator_client(coordinator, api_key) as client:
        view = client.balances()
    if as_json:
        emit_json(view)
        return
    table = Table(title="Ledger accounts")
    for column in ("account", "kind", "posted", "pending out", "pending in"):
        table.add_column(column, justify="right" if column != "account" else "left")
    for account in view["accounts"]:
        currency = account["currency"]
        table.add_row(
            plain(account["account"]),
            plain(account["kind"]),
            money(account["posted_minor"], currency),
            money(account["pending_debits_minor"], currency),
            money(account["pending_credits_minor"], currency),
        )
    console.print(table)
    if "trial_balance" in view:
        sums = ", ".join(f"{key} {value}" for key, value in view["trial_balance"].items())
        console.print(plain(f"trial balance (must be zero): {sums or 'no accounts'}"))


@app.command("statement")
def statement_command(
    job: Annotated[str, typer.Option("--job", help="The job whose transfers to list.")],
    as_csv: Annotated[bool, typer.Option("--csv", help="Write CSV to standard output.")] = False,
    coordinator: CoordinatorOption = DEFAULT_COORDINATOR,
    api_key: ApiKeyOption = None,
    as_json: JsonFlag = False,
) -> None:
    """List every transfer of a job: hold, royalties and fee per round, release.

    Example: tally billing statement --job job_01hx2c3d4e5f6g7h8j9k0m1n2p --csv > job.csv
    """
    with coordinator_client(coordinator, api_key) as client:
        view = client.job_statement(job)
    if as_json:
        emit_json(view)
        return
    if as_csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=_CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for line in view["lines"]:
            writer.writerow({key: _cell(line.get(key)) for key in _CSV_COLUMNS})
        return
    currency = view["currency"]
    table = Table(title=f"Job {view['job_id']}")
    for column in ("round", "kind", "to", "amount"):
        table.add_column(column, justify="right" if column in ("round", "amount") else "left")
    for line in view["lines"]:
        table.add_row(
            plain(line["round"]), plain(line["kind"]), plain(line["to"]),
            money(line["amount_minor"], currency),
        )  # fmt: skip
    console.print(table)
    for key in ("held", "royalties", "fees", "released", "hold_left", "paid_to_you"):
        if f"{key}_minor" in view:
            console.print(
                plain(f"{key.replace('_', ' ')}: {money(view[f'{key}_minor'], currency)}")
            )


def _cell(value: Any) -> str:
    """A CSV cell; text that a spreadsheet would run as a formula is quoted with '."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text
