"""``tally account …``: accounts and API keys on a coordinator, for everyone who has one.

Admins create accounts (``create`` prints the new account's first API key, once); anyone
can see who their key belongs to (``whoami``) and make, list and revoke their own keys.
Everything goes through the coordinator's HTTP API, which decides who may do what.
This module must never print an API key except the one just created, and never store one.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.text import Text

from clients.cli.output import JsonFlag, console, emit_json
from clients.cli.remote import (
    DEFAULT_COORDINATOR,
    ApiKeyOption,
    CoordinatorOption,
    compact_table,
    coordinator_client,
    money,
    plain,
    when,
)
from clients.sdk import TallyClient

app = typer.Typer(no_args_is_help=True, help="Accounts and API keys on a coordinator.")
key_app = typer.Typer(no_args_is_help=True, help="Make, list and revoke API keys.")
app.add_typer(key_app, name="key")

AccountOption = Annotated[
    str | None,
    typer.Option(
        "--account",
        metavar="ID",
        help="The account (acct_…); default: the account of the API key in use.",
        show_default=False,
    ),
]
LimitOption = Annotated[int, typer.Option(min=1, max=200, help="At most this many.")]
OffsetOption = Annotated[int, typer.Option(min=0, help="Skip this many first.")]


def _account_id(client: TallyClient, account: str | None) -> str:
    """``account`` if given, else the id of the key's own account."""
    if account is not None:
        return account
    return str(client.whoami()["account"]["id"])


def _print_new_key(api_key: str, key_id: str) -> None:
    console.print(f"API key  {api_key}", markup=False)
    console.print(f"         key id {key_id}; [dim]shown once, stored nowhere: keep it[/]")


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="The new account's name, e.g. alice.")],
    role: Annotated[str, typer.Option(help="creator, buyer, auditor or admin.")],
    coordinator: CoordinatorOption = DEFAULT_COORDINATOR,
    api_key: ApiKeyOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Create an account and print its first API key, once (admins only).

    Example: tally account create alice --role creator --coordinator http://127.0.0.1:8400
    """
    with coordinator_client(coordinator, api_key) as client:
        created = client.create_account(name, role)
    if as_json:
        emit_json(created)
        return
    account = created["account"]
    console.print(
        Text.assemble("account ", (str(account["name"]), "bold"), f" ({account['role']})  ")
        + plain(account["id"])
    )
    _print_new_key(str(created["api_key"]), str(created["key_id"]))


@app.command("list")
def list_(
    coordinator: CoordinatorOption = DEFAULT_COORDINATOR,
    api_key: ApiKeyOption = None,
    limit: LimitOption = 50,
    offset: OffsetOption = 0,
    as_json: JsonFlag = False,
) -> None:
    """List the coordinator's accounts (admins and auditors).

    Example: tally account list --json
    """
    with coordinator_client(coordinator, api_key) as client:
        page = client.list_accounts(limit=limit, offset=offset)
    if as_json:
        emit_json(page)
        return
    items: list[dict[str, Any]] = page["items"]
    if not items:
        console.print("no accounts")
        return
    table = compact_table("name", "role", "created", "status")
    table.add_column("id", no_wrap=True)
    for item in items:
        table.add_row(
            plain(item["name"]),
            plain(item["role"]),
            when(item.get("created_at")),
            "disabled" if item.get("disabled_at") else "active",
            plain(item["id"]),
        )
    console.print(table)


@app.command("whoami")
def whoami(
    coordinator: CoordinatorOption = DEFAULT_COORDINATOR,
    api_key: ApiKeyOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Show the account the API key belongs to, and the creator identities linked to it.

    Example: tally account whoami --coordinator http://127.0.0.1:8400
    """
    with coordinator_client(coordinator, api_key) as client:
        me = client.whoami()
    if as_json:
        emit_json(me)
        return
    account = me["account"]
    console.print(
        Text.assemble((str(account["name"]), "bold"), f" ({account['role']})  ", str(account["id"]))
    )
    console.print(f"created   {when(account.get('created_at'))}")
    if account.get("disabled_at"):
        console.print(f"disabled  {when(account['disabled_at'])}")
    for identity in me.get("identities", []):
        console.print(Text("identity  ") + plain(identity["did"]))


@app.command("earnings")
def earnings(
    account: Annotated[
        str | None,
        typer.Option(
            "--account",
            metavar="ID",
            help="A creator's account (acct_…; admins and auditors); default: your own.",
            show_default=False,
        ),
    ] = None,
    coordinator: CoordinatorOption = DEFAULT_COORDINATOR,
    api_key: ApiKeyOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Show what your datasets stand to earn: each job funded on them and its quoted line.

    Totals are per currency: committed (funded or running jobs), completed, and lost
    (failed or cancelled). These are quotes; payouts follow the settled round proofs.

    Example: tally account earnings --coordinator http://127.0.0.1:8400 --api-key "$KEY"
    """
    with coordinator_client(coordinator, api_key) as client:
        report = client.earnings(account)
    if as_json:
        emit_json(report)
        return
    datasets: list[dict[str, Any]] = report["datasets"]
    if not datasets:
        console.print("no jobs have been funded on your datasets yet")
        return
    table = compact_table("dataset", "job", "status", "samples", "amount")
    for dataset in datasets:
        for line in dataset["jobs"]:
            table.add_row(
                plain(dataset["dataset_id"]),
                plain(line["job_id"]),
                plain(line["status"]),
                f"{int(line['planned_samples']):,}",
                money(line["amount_minor"], line["currency"]),
            )
    console.print(table)
    for total in report["totals"]:
        currency = total["currency"]
        console.print(
            f"{currency}: committed {money(total['committed'], currency)}, "
            f"completed {money(total['completed'], currency)}, "
            f"lost {money(total['lost'], currency)}"
        )
    if report.get("truncated"):
        shown = sum(len(dataset["jobs"]) for dataset in datasets)
        console.print(f"[dim]showing the newest {shown} of {report['lines']} job lines[/]")
    console.print("[dim]quoted amounts; payouts follow settled round proofs[/]")


@key_app.command("create")
def key_create(
    account: AccountOption = None,
    label: Annotated[str, typer.Option(help="What the key is for, e.g. laptop.")] = "",
    coordinator: CoordinatorOption = DEFAULT_COORDINATOR,
    api_key: ApiKeyOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Make another API key and print it, once (for your account, or any as an admin).

    Example: tally account key create --label ci
    """
    with coordinator_client(coordinator, api_key) as client:
        created = client.create_key(_account_id(client, account), label)
    if as_json:
        emit_json(created)
        return
    _print_new_key(str(created["api_key"]), str(created["key_id"]))


@key_app.command("list")
def key_list(
    account: AccountOption = None,
    coordinator: CoordinatorOption = DEFAULT_COORDINATOR,
    api_key: ApiKeyOption = None,
    as_json: JsonFlag = False,
) -> None:
    """List an account's API keys (never their secrets).

    Example: tally account key list --json
    """
    with coordinator_client(coordinator, api_key) as client:
        page = client.list_keys(_account_id(client, account))
    if as_json:
        emit_json(page)
        return
    table = compact_table("key id", "label", "created", "revoked")
    for item in page["items"]:
        table.add_row(
            plain(item["key_id"]),
            plain(item.get("label") or ""),
            when(item.get("created_at")),
            when(item.get("revoked_at")),
        )
    console.print(table)


@key_app.command("revoke")
def key_revoke(
    key_id: Annotated[str, typer.Argument(help="The key id (from `tally account key list`).")],
    account: AccountOption = None,
    coordinator: CoordinatorOption = DEFAULT_COORDINATOR,
    api_key: ApiKeyOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Revoke an API key; it stops working at once.

    Example: tally account key revoke 3f2a9c0d1e4b5a6f
    """
    with coordinator_client(coordinator, api_key) as client:
        revoked = client.revoke_key(_account_id(client, account), key_id)
    if as_json:
        emit_json(revoked)
        return
    console.print(
        Text("revoked key ") + plain(revoked["key_id"]) + Text(f" at {when(revoked['revoked_at'])}")
    )
