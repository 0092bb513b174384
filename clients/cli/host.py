"""``tally host …``: run a creator's data-host node: identity, datasets, attestation, allow-list.

Everything here acts on the node's home directory (``--home``, default
``$TALLY_HOST_HOME`` or ``~/.tallystick/host``). This is the node's own command line: there
is no node server to talk to, so it calls ``data_host`` directly, and the node's rules live
there, not here. Only ``register`` and ``dataset publish`` talk to a coordinator, over its
HTTP API: they send the creator DID's signed link proof, the worker's attestation evidence
and signed dataset manifests, never a private key and never the data.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table
from rich.text import Text
from sqlalchemy.exc import SQLAlchemyError

from clients.cli.output import JsonFlag, console, emit_json, fail
from clients.cli.remote import (
    DEFAULT_COORDINATOR,
    ApiKeyOption,
    CoordinatorOption,
    coordinator_client,
    plain,
)
from data_host.allowlist import AppAllowList, check_fab_hash, fab_hash_of_file
from data_host.attestation import EvidenceKind, load_evidence, produce_evidence, store_evidence
from data_host.errors import DataHostError, WorkRefused
from data_host.home import NodeHome, default_home, init_home, open_home
from data_host.ingest import IngestResult, ingest_dataset
from data_host.integrity import verify_dataset
from data_host.policy import WorkRequest, admit_work
from data_host.registry import DatasetRegistry, RegisteredDataset
from data_host.terms import DatasetTerms, parse_price
from privacy.budget import Mechanism, PrivacyBudgetLedger
from privacy.errors import PrivacyError
from privacy.pii import PiiPolicy
from provenance.errors import ProvenanceError

app = typer.Typer(no_args_is_help=True, help="Run a creator's data-host node.")
dataset_app = typer.Typer(no_args_is_help=True, help="Add, inspect, verify and revoke datasets.")
app_app = typer.Typer(no_args_is_help=True, help="The allow-list of training code (app bundles).")
policy_app = typer.Typer(no_args_is_help=True, help="Ask the node whether it would do some work.")
app.add_typer(dataset_app, name="dataset")
app.add_typer(app_app, name="app")
app.add_typer(policy_app, name="policy")

HomeOption = Annotated[
    Path | None,
    typer.Option(
        "--home",
        help="The node's home directory (default: $TALLY_HOST_HOME or ~/.tallystick/host).",
        show_default=False,
    ),
]
_ERRORS = (DataHostError, PrivacyError, ProvenanceError)


def _home(home: Path | None) -> NodeHome:
    try:
        return open_home(home if home is not None else default_home())
    except DataHostError as exc:
        fail(str(exc))


@contextmanager
def _failing_cleanly() -> Iterator[None]:
    """Turn a domain error into one line on stderr and exit status 1."""
    try:
        yield
    except _ERRORS as exc:
        fail(str(exc))
    except SQLAlchemyError as exc:
        reason = getattr(exc, "orig", None) or exc
        fail(f"the node's database cannot be used: {reason}")


@app.command("init")
def init(
    name: Annotated[str, typer.Option(help="A name for this node, e.g. alice-node.")],
    home: HomeOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Create the node's home: keys (0600), registry database and configuration.

    Example: tally host init --name alice-node --home ./alice
    """
    with _failing_cleanly():
        node = init_home(home if home is not None else default_home(), name)
    result = {
        "home": str(node.root),
        "name": node.config.name,
        "creator_did": node.config.creator_did,
        "worker_did": node.config.worker_did,
    }
    if as_json:
        emit_json(result)
        return
    console.print(f"node [bold]{node.config.name}[/] created at {node.root}")
    console.print(f"creator identity  {node.config.creator_did}")
    console.print(f"worker key        {node.config.worker_did}")
    console.print(f"next: tally host attest --home {node.root}")


@app.command("attest")
def attest(
    home: HomeOption = None,
    kind: Annotated[
        EvidenceKind,
        typer.Option(help="auto: aws-nitro inside a Nitro Enclave, else dev (INSECURE)."),
    ] = EvidenceKind.AUTO,
    as_json: JsonFlag = False,
) -> None:
    """Produce attestation evidence for the worker key and store it beside the key.

    Example: tally host attest --home ./alice
    """
    node = _home(home)
    with _failing_cleanly():
        evidence = produce_evidence(node, kind)
        verified = store_evidence(node, evidence)
    result = {
        "type": evidence.type,
        "evidence_digest": evidence.digest,
        "worker_did": node.config.worker_did,
        "measurements": dict(verified.measurements),
        "insecure": verified.insecure,
        "path": str(node.evidence_path),
    }
    if as_json:
        emit_json(result)
        return
    console.print(f"wrote {evidence.type} evidence to {node.evidence_path}")
    for name, value in sorted(verified.measurements.items()):
        console.print(f"  measurement {name} = {value}")
    if verified.insecure:
        console.print(f"[bold yellow]INSECURE:[/] {verified.insecure_reason}")


@app.command("register")
def register(
    coordinator: CoordinatorOption = DEFAULT_COORDINATOR,
    api_key: ApiKeyOption = None,
    home: HomeOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Link this node's creator identity to your creator account and register its worker.

    Signs a proof that the creator DID belongs to the API key's account (for this
    coordinator only), then sends the worker's stored attestation evidence; the coordinator
    verifies both. Run again after `tally host attest` to replace the evidence.

    Example: tally host register --coordinator http://127.0.0.1:8400 --api-key "$KEY" --home ./alice
    """
    from coordinator.identity import sign_identity_link

    node = _home(home)
    with _failing_cleanly():
        evidence = load_evidence(node)
        creator_key = node.creator_key()
    with coordinator_client(coordinator, api_key) as client:
        account_id = str(client.whoami()["account"]["id"])
        audience = str(client.info()["audience"])
        with _failing_cleanly():
            proof = sign_identity_link(creator_key, account_id=account_id, audience=audience)
        identity = client.link_identity(proof.to_dict())
        host = client.register_host(node.config.creator_did, json.loads(evidence.to_json()))
    if as_json:
        emit_json({"identity": identity, "host": host})
        return
    console.print(Text("registered host ") + plain(host["host_did"]))
    console.print(Text("  account     ") + plain(identity.get("account_id")))
    console.print(Text("  worker      ") + plain(host["worker_did"]))
    console.print(
        Text("  evidence    ") + plain(f"{host['evidence_type']} {host['evidence_digest']}")
    )
    if host.get("insecure"):
        console.print(
            Text("  INSECURE    ", style="bold yellow") + plain(host.get("insecure_reason"))
        )
    else:
        console.print("  insecure    no")


class _RichIngestProgress:
    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._tasks: dict[str, TaskID] = {}

    def start(self, stage: str, total: int) -> None:
        if stage in self._tasks:
            self._progress.reset(self._tasks[stage], total=total)
        else:
            self._tasks[stage] = self._progress.add_task(stage, total=total)

    def advance(self, stage: str, amount: int) -> None:
        self._progress.advance(self._tasks[stage], amount)


def _dataset_summary(registered: RegisteredDataset) -> dict[str, Any]:
    row = registered.row
    predicate = registered.signed.manifest.predicate
    return {
        "id": row.id,
        "version": row.version,
        "title": row.title,
        "status": row.status,
        "format": row.format,
        "rows": row.rows,
        "bytes": row.total_bytes,
        "merkle_root": registered.signed.manifest.merkle_root,
        "manifest_digest": row.manifest_digest,
        "license": predicate["license"],
        "price": predicate["price"],
        "privacy": predicate["privacy"],
        "allowed_uses": predicate["allowed_uses"],
        "pii": predicate["pii"],
        "schema": predicate["schema"],
        "source_path": row.source_path,
        "content_path": row.content_path,
        "created_at": row.created_at.isoformat(),
        "revoked_at": row.revoked_at.isoformat() if row.revoked_at else None,
        "revoked_reason": row.revoked_reason,
    }


@dataset_app.command("add")
def dataset_add(
    path: Annotated[
        Path,
        typer.Argument(
            help="A data file or folder (CSV, Parquet, .npy/.npz, JSON Lines, or an image folder)."
        ),
    ],
    title: Annotated[str, typer.Option(help="A title buyers see.")],
    license: Annotated[str, typer.Option(help="SPDX licence id or expression, e.g. CC-BY-4.0.")],
    price_per_sample: Annotated[
        str, typer.Option(help="Price per training sample, an exact decimal, e.g. 0.002.")
    ],
    currency: Annotated[str, typer.Option(help="ISO 4217 currency code, e.g. USD.")],
    max_epsilon_per_job: Annotated[
        float | None, typer.Option(help="Largest ε one job may spend (default: the lifetime cap).")
    ] = None,
    lifetime_epsilon: Annotated[
        float, typer.Option(help="Cap on ε composed over every job, ever.")
    ] = 10.0,
    delta: Annotated[float, typer.Option(help="δ at which ε is accounted; < 1/rows.")] = 1e-5,
    allowed_use: Annotated[
        list[str] | None, typer.Option(help="What buyers may do: train, evaluate (repeatable).")
    ] = None,
    pii: Annotated[
        PiiPolicy, typer.Option(help="If PII is found: block (refuse), redact (copy) or allow.")
    ] = PiiPolicy.BLOCK,
    label: Annotated[
        str | None, typer.Option(help="The label column (default: label/target/y/class).")
    ] = None,
    description: Annotated[str, typer.Option(help="A longer description.")] = "",
    home: HomeOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Hash, scan and sign a dataset, and register it on this node. The data stays in PATH.

    Example: tally host dataset add ./heart.csv --title "Heart study" --license CC-BY-4.0
    --price-per-sample 0.002 --currency USD --max-epsilon-per-job 3 --lifetime-epsilon 8
    """
    node = _home(home)
    with _failing_cleanly():
        terms = DatasetTerms(
            title=title,
            license=license,
            price_per_sample=parse_price(price_per_sample),
            currency=currency,
            lifetime_epsilon=lifetime_epsilon,
            max_epsilon_per_job=max_epsilon_per_job,
            delta=delta,
            allowed_uses=tuple(allowed_use or ["train"]),
            pii_policy=pii,
            description=description,
            label=label,
        )
        with Progress(
            TextColumn("{task.description:>9}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
            disable=as_json,
        ) as progress:
            result = ingest_dataset(node, path, terms, progress=_RichIngestProgress(progress))
    summary = _dataset_summary(result.dataset)
    if as_json:
        emit_json(summary)
        return
    _print_added(result)


def _print_added(result: IngestResult) -> None:
    row = result.dataset.row
    console.print(
        f"added [bold]{row.id}[/] {row.title!r}: {row.rows} rows, {row.total_bytes} bytes"
    )
    console.print(f"  merkle root      {result.signed.manifest.merkle_root}")
    console.print(f"  manifest digest  {row.manifest_digest}")
    if result.pii.total:
        counts = ", ".join(
            f"{kind} {sum(columns.values())}" for kind, columns in result.pii.counts().items()
        )
        action = (
            "redacted copy at " + row.content_path
            if row.content_path != row.source_path
            else ("allowed")
        )
        console.print(f"  PII found        {counts} ({action})")
    else:
        console.print("  PII found        none")


@dataset_app.command("list")
def dataset_list(home: HomeOption = None, as_json: JsonFlag = False) -> None:
    """List the datasets on this node.

    Example: tally host dataset list --home ./alice --json
    """
    node = _home(home)
    with _failing_cleanly():
        rows = DatasetRegistry(node.engine).list()
    if as_json:
        emit_json(
            [
                {
                    "id": row.id,
                    "title": row.title,
                    "status": row.status,
                    "format": row.format,
                    "rows": row.rows,
                    "bytes": row.total_bytes,
                    "manifest_digest": row.manifest_digest,
                }
                for row in rows
            ]
        )
        return
    if not rows:
        console.print("no datasets yet: tally host dataset add PATH …")
        return
    table = Table("title", "format", "rows", "bytes", "status")
    table.add_column("id", no_wrap=True, min_width=29)
    for row in rows:
        table.add_row(
            row.title, row.format, str(row.rows), str(row.total_bytes), row.status, row.id
        )
    console.print(table)


@dataset_app.command("show")
def dataset_show(
    dataset_id: Annotated[str, typer.Argument(help="The dataset id (ds_…).")],
    home: HomeOption = None,
    manifest: Annotated[
        bool, typer.Option("--manifest", help="Print the signed manifest envelope (DSSE JSON).")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Show a dataset's terms, schema, PII summary and manifest.

    Example: tally host dataset show ds_0123… --home ./alice --manifest > manifest.dsse.json
    """
    node = _home(home)
    with _failing_cleanly():
        registered = DatasetRegistry(node.engine).get(dataset_id)
    if manifest:
        console.file.write(registered.signed.envelope.to_json().decode() + "\n")
        return
    summary = _dataset_summary(registered)
    if as_json:
        emit_json(summary)
        return
    for key in (
        "id",
        "title",
        "status",
        "format",
        "rows",
        "bytes",
        "license",
        "allowed_uses",
        "price",
        "privacy",
        "merkle_root",
        "manifest_digest",
        "content_path",
        "pii",
        "schema",
        "created_at",
        "revoked_at",
        "revoked_reason",
    ):
        console.print(f"[bold]{key:>16}[/]  {summary[key]}")


@dataset_app.command("verify")
def dataset_verify(
    dataset_id: Annotated[str, typer.Argument(help="The dataset id (ds_…).")],
    home: HomeOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Re-hash a dataset's files and check them against its signed manifest.

    Exits 1 if anything differs, naming the files and chunks.

    Example: tally host dataset verify ds_0123… --home ./alice
    """
    node = _home(home)
    with _failing_cleanly():
        report = verify_dataset(node.engine, dataset_id)
    if as_json:
        emit_json(report.to_dict())
    elif report.matches:
        console.print(
            f"[green]ok[/] {dataset_id}: the files match the signed manifest "
            f"(root {report.expected_root})"
        )
    else:
        console.print(f"[bold red]MISMATCH[/] {dataset_id} at {report.content_path}")
        if report.problem:
            console.print(f"  {report.problem}")
        for label, items in (
            ("added", report.added_files),
            ("removed", report.removed_files),
            ("resized", report.resized_files),
        ):
            for item in items:
                console.print(f"  {label} file {item}")
        for path, index in report.changed_chunks[:50]:
            console.print(f"  changed chunk {index} of {path}")
        if len(report.changed_chunks) > 50:
            console.print(f"  … and {len(report.changed_chunks) - 50} more chunks")
    if not report.matches:
        raise typer.Exit(1)


@dataset_app.command("revoke")
def dataset_revoke(
    dataset_id: Annotated[str, typer.Argument(help="The dataset id (ds_…).")],
    reason: Annotated[
        str, typer.Option(help="Why (kept with the dataset).")
    ] = "revoked by creator",
    home: HomeOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Revoke a dataset: this node refuses all future work on it. This cannot be undone.

    Example: tally host dataset revoke ds_0123… --reason "consent withdrawn" --home ./alice
    """
    node = _home(home)
    with _failing_cleanly():
        registered = DatasetRegistry(node.engine).revoke(dataset_id, reason)
    if as_json:
        emit_json(_dataset_summary(registered))
        return
    console.print(f"revoked {dataset_id}: this node refuses all future work on it")


@dataset_app.command("publish")
def dataset_publish(
    dataset_id: Annotated[str, typer.Argument(help="The dataset id (ds_…).")],
    coordinator: CoordinatorOption = DEFAULT_COORDINATOR,
    api_key: ApiKeyOption = None,
    home: HomeOption = None,
    as_json: JsonFlag = False,
) -> None:
    """List a dataset in a coordinator's catalog: sends its signed manifest, not the data.

    The coordinator verifies the manifest against your linked creator identity (run
    `tally host register` first) and logs it. Publishing the same manifest again is harmless.

    Example: tally host dataset publish ds_0123… --coordinator http://127.0.0.1:8400 --home ./alice
    """
    node = _home(home)
    with _failing_cleanly():
        registered = DatasetRegistry(node.engine).get(dataset_id)
    if registered.is_revoked:
        fail(
            f"dataset {dataset_id} was revoked on this node "
            f"({registered.row.revoked_reason or 'no reason given'}); it cannot be published"
        )
    envelope = registered.signed.envelope.to_dict()
    with coordinator_client(coordinator, api_key) as client:
        listing = client.publish_manifest(envelope)
    if as_json:
        emit_json(listing)
        return
    log = listing.get("log") or {}
    console.print(
        Text("published ")
        + plain(listing.get("dataset_id"))
        + Text(f" version {listing.get('version')}: log index {log.get('index')}")
    )


@dataset_app.command("budget")
def dataset_budget(
    dataset_id: Annotated[str, typer.Argument(help="The dataset id (ds_…).")],
    home: HomeOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Show a dataset's privacy budget: caps, ε spent and committed, every mechanism run.

    Example: tally host dataset budget ds_0123… --home ./alice --json
    """
    node = _home(home)
    with _failing_cleanly():
        DatasetRegistry(node.engine).get(dataset_id)
        ledger = PrivacyBudgetLedger(node.engine)
        status = ledger.status(dataset_id)
        history = ledger.history(dataset_id)
    if as_json:
        emit_json({"status": status.to_dict(), "history": [entry.to_dict() for entry in history]})
        return
    console.print(
        f"{dataset_id}: ε spent {status.spent_epsilon:.4g}, committed "
        f"{status.committed_epsilon:.4g} of {status.lifetime_cap:g} at δ={status.delta:g}"
    )
    table = Table("job", "round", "noise", "sample rate", "steps", "accountant", "recorded")
    for entry in history:
        item = entry.to_dict()
        table.add_row(
            *(
                str(item[key])
                for key in (
                    "job_id",
                    "round",
                    "noise_multiplier",
                    "sample_rate",
                    "steps",
                    "accountant",
                    "recorded_at",
                )
            )
        )
    console.print(table)


def _fab_hash(fab_hash: str | None, fab: Path | None) -> str:
    if (fab_hash is None) == (fab is None):
        fail("give exactly one of a HASH argument or --fab FILE")
    try:
        if fab is not None:
            return fab_hash_of_file(fab)
        return check_fab_hash(str(fab_hash))
    except DataHostError as exc:
        fail(str(exc))


FabHashArgument = Annotated[
    str | None, typer.Argument(help="The bundle's SHA-256 (Flower's fab_hash).")
]
FabOption = Annotated[Path | None, typer.Option(help="A .fab file to hash instead.")]


@app_app.command("allow")
def app_allow(
    fab_hash: FabHashArgument = None,
    fab: FabOption = None,
    label: Annotated[str, typer.Option(help="What this bundle is.")] = "",
    home: HomeOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Allow a Flower app bundle (by hash) to run on this node.

    Example: tally host app allow --fab ./myorg.app.1-0-0.fab --label "audited v1" --home ./alice
    """
    node = _home(home)
    checked = _fab_hash(fab_hash, fab)
    with _failing_cleanly():
        entry = AppAllowList(node.engine).allow(checked, label or (fab.name if fab else ""))
    if as_json:
        emit_json({"fab_hash": entry.fab_hash, "label": entry.label, "shipped": entry.shipped})
        return
    console.print(f"allowed {entry.fab_hash} ({entry.label})")


@app_app.command("remove")
def app_remove(
    fab_hash: Annotated[str, typer.Argument(help="The bundle's SHA-256.")],
    home: HomeOption = None,
) -> None:
    """Stop allowing a bundle the creator added.

    Example: tally host app remove 3f5a… --home ./alice
    """
    node = _home(home)
    with _failing_cleanly():
        AppAllowList(node.engine).remove(fab_hash)
    console.print(f"removed {fab_hash.strip().lower()}")


@app_app.command("list")
def app_list(home: HomeOption = None, as_json: JsonFlag = False) -> None:
    """List the app bundles this node runs.

    Example: tally host app list --home ./alice
    """
    node = _home(home)
    with _failing_cleanly():
        entries = AppAllowList(node.engine).entries()
    if as_json:
        emit_json(
            [
                {"fab_hash": entry.fab_hash, "label": entry.label, "shipped": entry.shipped}
                for entry in entries
            ]
        )
        return
    if not entries:
        console.print("no app bundles are allowed: this node runs nothing")
        return
    table = Table("fab hash", "label", "source")
    for entry in entries:
        table.add_row(entry.fab_hash, entry.label, "shipped" if entry.shipped else "creator")
    console.print(table)


@policy_app.command("check")
def policy_check(
    dataset_id: Annotated[str, typer.Argument(help="The dataset id (ds_…).")],
    job: Annotated[str, typer.Option(help="The job id the work belongs to.")],
    app_hash: Annotated[str, typer.Option(help="The app bundle's SHA-256 (fab_hash).")],
    noise_multiplier: Annotated[float, typer.Option(help="DP-SGD noise multiplier (sigma).")],
    sample_rate: Annotated[float, typer.Option(help="Poisson sample rate q.")],
    steps: Annotated[int, typer.Option(help="Planned DP-SGD steps over the whole job.")],
    use: Annotated[str, typer.Option(help="train or evaluate.")] = "train",
    home: HomeOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Ask whether this node would accept some work, without reserving anything.

    Checks, in order: the app bundle is allowed, the dataset exists, is not revoked and
    allows the use, and the planned steps fit the per-job and lifetime ε caps. Exits 1
    with the reason when the node would refuse.

    Example: tally host policy check ds_0123… --job job-1 --app-hash 3f5a… --noise-multiplier 1.1
    --sample-rate 0.01 --steps 500 --home ./alice
    """
    node = _home(home)
    try:
        request = WorkRequest(
            dataset_id=dataset_id,
            job_id=job,
            use=use,
            fab_hash=app_hash,
            planned=Mechanism(noise_multiplier, sample_rate, steps),
        )
        decision = admit_work(node.engine, request, reserve=False)
    except WorkRefused as exc:
        if as_json:
            emit_json({"accepted": False, "reason": str(exc)})
            raise typer.Exit(1) from exc
        fail(f"refused: {exc}")
    except _ERRORS as exc:
        fail(str(exc))
    if as_json:
        emit_json({"accepted": True, **decision.to_dict()})
        return
    console.print(
        f"[green]accepted[/]: this job would spend ε={decision.job_epsilon:.4g}; the dataset's "
        f"lifetime ε would be {decision.lifetime_epsilon_after:.4g} of {decision.lifetime_cap:g}"
    )
