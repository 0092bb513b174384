"""``tally catalog …``: search and inspect the coordinator's dataset catalog; creators revoke.

Buyers search listings (cheapest first) and look at one listing with its signed manifest's
place in the transparency log; the creator who listed a dataset can withdraw it. Every
listing's text (titles, licences, reasons) was chosen by someone else and is printed as
plain text, never as markup. This module must never filter or rank listings itself: the
coordinator's answer is what is shown.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.text import Text

from clients.cli.output import JsonFlag, console, emit_json, emit_raw
from clients.cli.remote import (
    DEFAULT_COORDINATOR,
    ApiKeyOption,
    CoordinatorOption,
    compact_table,
    coordinator_client,
    plain,
    when,
)

app = typer.Typer(no_args_is_help=True, help="Search the dataset catalog; revoke your listings.")

DatasetArgument = Annotated[str, typer.Argument(help="The dataset id (ds_…).")]
_FILTERS = "Filters"


def _price(listing: dict[str, Any]) -> str:
    price = listing.get("price") or {}
    return f"{price.get('per_sample', '?')} {price.get('currency', '')}/sample"


def _royalty_rows(listing: dict[str, Any]) -> list[tuple[str, str]]:
    """One ``royalty`` row per payee of a split (none when the creator is paid alone)."""
    royalties = listing.get("royalties")
    if not isinstance(royalties, dict):
        return []
    remainder = royalties.get("remainder_to")
    rows = []
    for payee in royalties.get("payees") or []:
        share = payee.get("share_bps")
        percent = f"{share / 100:g}%" if isinstance(share, int) else "?"
        leftover = " (takes rounding leftovers)" if payee.get("account_id") == remainder else ""
        rows.append(
            (
                "royalty",
                f"{percent} ({share} bps) to {payee.get('account_id')} "
                f"({payee.get('did')}){leftover}",
            )
        )
    return rows


def _epsilon_caps(listing: dict[str, Any]) -> str:
    """``per job/lifetime`` ε caps, e.g. ``3/8``."""
    privacy = listing.get("privacy") or {}
    per_job = privacy.get("max_epsilon_per_job")
    return f"{per_job if per_job is not None else '-'}/{privacy.get('lifetime_epsilon', '-')}"


def _log_index(listing: dict[str, Any]) -> str:
    log = listing.get("log") or {}
    index = log.get("index")
    text = "-" if index is None else str(index)
    if log.get("revocation_index") is not None:
        text += f" (revoked at {log['revocation_index']})"
    return text


@app.command("search")
def search(
    q: Annotated[
        str | None,
        typer.Option(
            "--q", help="Words to find in titles and descriptions.", rich_help_panel=_FILTERS
        ),
    ] = None,
    modality: Annotated[
        str | None, typer.Option(help="tabular, image or text.", rich_help_panel=_FILTERS)
    ] = None,
    license: Annotated[
        str | None, typer.Option(help="SPDX licence id, e.g. CC-BY-4.0.", rich_help_panel=_FILTERS)
    ] = None,
    currency: Annotated[
        str | None,
        typer.Option(help="Priced in this currency, e.g. USD.", rich_help_panel=_FILTERS),
    ] = None,
    max_price: Annotated[
        str | None,
        typer.Option(
            help="At most this price per sample (exact decimal).", rich_help_panel=_FILTERS
        ),
    ] = None,
    min_rows: Annotated[
        int | None, typer.Option(min=0, help="At least this many rows.", rich_help_panel=_FILTERS)
    ] = None,
    max_rows: Annotated[
        int | None, typer.Option(min=0, help="At most this many rows.", rich_help_panel=_FILTERS)
    ] = None,
    min_epsilon: Annotated[
        float | None,
        typer.Option(min=0, help="One job may spend at least this ε.", rich_help_panel=_FILTERS),
    ] = None,
    max_delta: Annotated[
        float | None,
        typer.Option(
            min=0, max=1, help="Accounted at δ no larger than this.", rich_help_panel=_FILTERS
        ),
    ] = None,
    use: Annotated[
        str | None,
        typer.Option(help="Allows this use: train or evaluate.", rich_help_panel=_FILTERS),
    ] = None,
    include_revoked: Annotated[
        bool,
        typer.Option(
            "--include-revoked", help="Show revoked listings too.", rich_help_panel=_FILTERS
        ),
    ] = False,
    limit: Annotated[int, typer.Option(min=1, help="At most this many listings.")] = 50,
    offset: Annotated[int, typer.Option(min=0, help="Skip this many first.")] = 0,
    coordinator: CoordinatorOption = DEFAULT_COORDINATOR,
    api_key: ApiKeyOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Search the catalog, cheapest first.

    Example: tally catalog search --modality tabular --max-price 0.01 --min-epsilon 1
    """
    with coordinator_client(coordinator, api_key) as client:
        page = client.search_catalog(
            q=q,
            modality=modality,
            license=license,
            currency=currency,
            max_price=max_price,
            min_rows=min_rows,
            max_rows=max_rows,
            min_epsilon_per_job=min_epsilon,
            max_delta=max_delta,
            use=use,
            include_revoked=include_revoked or None,
            limit=limit,
            offset=offset,
        )
    if as_json:
        emit_json(page)
        return
    items: list[dict[str, Any]] = page["items"]
    if not items:
        console.print("no listings match")
        return
    table = compact_table()
    table.add_column("dataset", min_width=29, overflow="fold")
    table.add_column("modality")
    table.add_column("rows", justify="right")
    table.add_column("price", justify="right")
    table.add_column("ε cap", justify="right")
    table.add_column("status")
    table.add_column("log", justify="right")
    for item in items:
        price = item.get("price") or {}
        table.add_row(
            plain(item.get("dataset_id")) + Text("\n") + plain(item.get("title")),
            plain(item.get("modality")),
            str(item.get("rows", "-")),
            plain(f"{price.get('per_sample', '?')} {price.get('currency', '')}"),
            _epsilon_caps(item),
            plain(item.get("status")),
            plain((item.get("log") or {}).get("index")),
        )
    console.print(table)
    first = int(page.get("offset", offset)) + 1
    total = page.get("total", len(items))
    console.print(
        f"listings {first} to {first + len(items) - 1} of {total}; "
        "price per sample; ε cap per job/lifetime"
    )


def _attestation(listing: dict[str, Any]) -> str:
    attestation = listing.get("attestation")
    if not attestation:
        return "none registered"
    insecure = " (INSECURE)" if attestation.get("insecure") else ""
    return f"{attestation.get('evidence_type')}{insecure}"


@app.command("show")
def show(
    dataset_id: DatasetArgument,
    version: Annotated[
        int | None, typer.Option(min=1, help="A listed version (default: the newest).")
    ] = None,
    coordinator: CoordinatorOption = DEFAULT_COORDINATOR,
    api_key: ApiKeyOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Show a listing, its log index and the tlog-proof of its manifest in the log.

    Save the proof with --json (.proof.tlog_proof) and check it offline against the log's
    verifier key.

    Example: tally catalog show ds_01hx2c3d4e5f6g7h8j9k0m1n2p --json
    """
    with coordinator_client(coordinator, api_key) as client:
        detail = client.get_listing(dataset_id, version=version)
    if as_json:
        emit_json(detail)
        return
    listing: dict[str, Any] = detail["listing"]
    proof: dict[str, Any] = detail.get("proof") or {}
    privacy = listing.get("privacy") or {}
    rows: list[tuple[str, str]] = [
        ("id", str(listing.get("dataset_id"))),
        ("version", str(listing.get("version"))),
        ("title", str(listing.get("title"))),
        ("status", str(listing.get("status"))),
        ("creator", str(listing.get("creator"))),
        ("modality", f"{listing.get('modality')} ({listing.get('format')})"),
        ("license", str(listing.get("license"))),
        ("allowed uses", ", ".join(str(use) for use in listing.get("allowed_uses") or [])),
        ("price", _price(listing)),
        *_royalty_rows(listing),
        ("rows", str(listing.get("rows"))),
        ("bytes", str(listing.get("total_bytes"))),
        ("ε per job", str(privacy.get("max_epsilon_per_job") or "-")),
        ("ε lifetime", str(privacy.get("lifetime_epsilon"))),
        ("δ", str(privacy.get("delta"))),
        ("PII findings", f"{listing.get('pii_findings')} (redacted: {listing.get('redacted')})"),
        ("manifest", str(listing.get("manifest_digest"))),
        ("listed", when(listing.get("listed_at"))),
        ("log index", _log_index(listing)),
        ("host evidence", _attestation(listing)),
    ]
    if listing.get("status") == "revoked":
        rows += [
            ("revoked", when(listing.get("revoked_at"))),
            ("reason", str(listing.get("revoke_reason"))),
        ]
    for name, value in rows:
        console.print(Text(f"{name:>14}  ", style="bold") + plain(value))
    if listing.get("development_mode"):
        console.print("[bold yellow]development mode:[/] this coordinator accepts INSECURE hosts")
    console.print(
        f"\ntlog-proof of log entry {proof.get('index')} (tree size {proof.get('tree_size')}):"
    )
    text = str(proof.get("tlog_proof", ""))
    emit_raw("".join(char if char == "\n" or char.isprintable() else "?" for char in text))


@app.command("revoke")
def revoke(
    dataset_id: DatasetArgument,
    reason: Annotated[str, typer.Option(help="Why (logged and shown to buyers).")],
    coordinator: CoordinatorOption = DEFAULT_COORDINATOR,
    api_key: ApiKeyOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Withdraw your dataset from the catalog; new jobs on it are refused. Logged; final.

    Example: tally catalog revoke ds_01hx2c3d4e5f6g7h8j9k0m1n2p --reason "consent withdrawn"
    """
    with coordinator_client(coordinator, api_key) as client:
        listing = client.revoke_listing(dataset_id, reason)
    if as_json:
        emit_json(listing)
        return
    console.print(
        Text("revoked ")
        + plain(listing.get("dataset_id"))
        + Text(f"; logged at index {(listing.get('log') or {}).get('revocation_index')}")
    )
