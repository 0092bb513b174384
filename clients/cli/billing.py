"""``tally billing balance|statement|payout|reconcile|onboard``: the ledger and the
payment rail as the coordinator shows them to you.

``balance`` lists your ledger accounts (royalties owed to a creator, refunds owed to a
buyer, a buyer's job holds; admins and auditors see every account and the trial balance,
which is zero per currency). ``statement --job J`` lists every transfer of one job: its
hold, each round's royalties and platform fee, the release of what was not spent; as a
table, JSON or CSV. These commands show what the coordinator answers; the settlement
records themselves are in the transparency log, next to the round proofs they settle.
``statement --creator A`` lists a creator's royalties, disputes and payouts across jobs.

``payout`` (admins) pays everything owed through the coordinator's rail (Stripe transfers
to creators' connected accounts and refunds of released holds; on the ledger rail, a
signed statement of what to pay) after reconciling anything an earlier run left pending;
``reconcile`` does only the latter. ``onboard`` (creators) gives the link to set up the
Stripe Express account that payouts go to.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from clients.cli.output import JsonFlag, console, emit_json, fail
from clients.cli.remote import (
    DEFAULT_COORDINATOR,
    ApiKeyOption,
    CoordinatorOption,
    coordinator_client,
    money,
    plain,
)

app = typer.Typer(
    help="Ledger balances, statements, payouts and onboarding (money follows the proofs).",
    no_args_is_help=True,
)
_CSV_COLUMNS = (
    "transfer", "job", "kind", "round", "from", "to", "amount_minor", "status", "reference", "at",
)  # fmt: skip


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
    job: Annotated[
        str | None, typer.Option("--job", help="The job whose transfers to list.")
    ] = None,
    creator: Annotated[
        str | None,
        typer.Option("--creator", help="The creator account (acct_…) whose transfers to list."),
    ] = None,
    as_csv: Annotated[bool, typer.Option("--csv", help="Write CSV to standard output.")] = False,
    coordinator: CoordinatorOption = DEFAULT_COORDINATOR,
    api_key: ApiKeyOption = None,
    as_json: JsonFlag = False,
) -> None:
    """List every transfer of a job, or of a creator across jobs.

    A job's statement: its hold, royalties and fee per round, the release, refunds. A
    creator's: royalties, disputes and payouts, with what is owed now.

    Example: tally billing statement --job job_01hx2c3d4e5f6g7h8j9k0m1n2p --csv > job.csv
    """
    if (job is None) == (creator is None):
        fail("give exactly one of --job JOB or --creator ACCOUNT")
    with coordinator_client(coordinator, api_key) as client:
        view = client.job_statement(job) if job else client.creator_statement(creator or "")
    if as_json:
        emit_json(view)
        return
    if as_csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=_CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for line in view["lines"]:
            writer.writerow({key: _cell(line.get(key)) for key in _CSV_COLUMNS})
        return
    if creator:
        _print_creator(view)
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


def _print_creator(view: dict[str, Any]) -> None:
    table = Table(title=f"Creator {view['account_id']}")
    for column in ("job", "kind", "from", "to", "amount", "status"):
        table.add_column(column, justify="right" if column == "amount" else "left")
    currencies = {item["account"]: item["currency"] for item in view["accounts"]}
    for line in view["lines"]:
        currency = currencies.get(line["to"]) or currencies.get(line["from"]) or ""
        table.add_row(
            plain(line["job"]), plain(line["kind"]), plain(line["from"]), plain(line["to"]),
            money(line["amount_minor"], currency), plain(line["status"]),
        )  # fmt: skip
    console.print(table)
    for account in view["accounts"]:
        console.print(
            plain(f"owed to you now: {money(account['posted_minor'], account['currency'])}")
        )


StatementFile = Annotated[
    Path | None,
    typer.Option("--out", help="Write the signed payout statement (DSSE JSON) to this file."),
]
_REPORT_SECTIONS = ("paid", "funded", "failed", "waiting", "skipped")


def _print_report(report: dict[str, Any], title: str) -> None:
    table = Table(title=f"{title} on the {report['rail']} rail")
    for column in ("outcome", "kind", "job", "party", "amount", "rail id / reason"):
        table.add_column(column, justify="right" if column == "amount" else "left")
    for section in _REPORT_SECTIONS:
        for item in report[section]:
            table.add_row(
                plain(section), plain(item["kind"]), plain(item["job_id"]), plain(item["party"]),
                money(item["amount_minor"], item["currency"]),
                plain(item.get("rail_ref") or item.get("detail") or item.get("reason") or ""),
            )  # fmt: skip
    console.print(table)
    if report["log_index"] is not None:
        console.print(plain(f"payout statement signed and logged at index {report['log_index']}"))
    else:
        console.print(plain("nothing was paid; no statement was logged"))


@app.command("payout")
def payout_command(
    out: StatementFile = None,
    coordinator: CoordinatorOption = DEFAULT_COORDINATOR,
    api_key: ApiKeyOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Pay everything owed through the payment rail (admins).

    Creators' royalties and buyers' refunds are paid after anything an earlier run left
    pending is reconciled; the run's signed payout statement is logged. Exits 1 if the
    rail refused or could not be reached for any of them (they stay owed).

    Example: tally billing payout --out payout-statement.json
    """
    with console.status("paying what is owed…"), coordinator_client(coordinator, api_key) as client:
        report = client.payouts()
    _finish_report(report, out, as_json, "Payouts")


@app.command("reconcile")
def reconcile_command(
    out: StatementFile = None,
    coordinator: CoordinatorOption = DEFAULT_COORDINATOR,
    api_key: ApiKeyOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Settle rail operations that a crashed run left pending (admins).

    Each payment, payout or refund is looked up on the rail by its idempotency key, or
    made again with the same key, which the rail answers with the first result.

    Example: tally billing reconcile --json
    """
    with console.status("reconciling…"), coordinator_client(coordinator, api_key) as client:
        report = client.reconcile()
    _finish_report(report, out, as_json, "Reconciled")


def _finish_report(report: dict[str, Any], out: Path | None, as_json: bool, title: str) -> None:
    if out is not None and report.get("statement") is not None:
        out.write_text(json.dumps(report["statement"], indent=2) + "\n", encoding="utf-8")
    if as_json:
        emit_json(report)
    else:
        _print_report(report, title)
    if report["failed"] or report["waiting"]:
        raise typer.Exit(1)


@app.command("onboard")
def onboard_command(
    email: Annotated[
        str | None, typer.Option(help="Your e-mail address for the payout account.")
    ] = None,
    coordinator: CoordinatorOption = DEFAULT_COORDINATOR,
    api_key: ApiKeyOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Set up the account your royalties are paid to (creators, stripe rail).

    Prints the link where you finish Stripe's onboarding; run it again for a fresh link.

    Example: tally billing onboard --email creator@example.org
    """
    with coordinator_client(coordinator, api_key) as client:
        view = client.onboard(email)
    if as_json:
        emit_json(view)
        return
    console.print(plain(f"payout account {view['account']} on the {view['rail']} rail"))
    console.print(plain(f"finish onboarding at: {view['url']}"))
    if not view["payouts_enabled"]:
        console.print(plain("payouts start once Stripe enables them on the account"))


def _cell(value: Any) -> str:
    """A CSV cell; text that a spreadsheet would run as a formula is quoted with '."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text
