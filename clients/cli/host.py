"""``tally host …``: run a creator's data-host node: identity, datasets, attestation, allow-list.

Everything here acts on the node's home directory (``--home``, default
``$TALLY_HOST_HOME`` or ``~/.tallystick/host``). This is the node's own command line: there
is no node server to talk to, so it calls ``data_host`` directly, and the node's rules live
there, not here. Only ``register``, ``up`` and ``dataset publish`` talk to a coordinator,
over its HTTP API: they send the creator DID's signed link proof, the worker's attestation
evidence and signed dataset manifests, never a private key and never the data. ``register``
pins the coordinator's DID in the home; ``up`` runs the node's Flower SuperNode towards that
coordinator's SuperLink, in the foreground, until a stop signal.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

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
    COORDINATOR_ENV,
    DEFAULT_COORDINATOR,
    ApiKeyOption,
    CoordinatorOption,
    coordinator_client,
    error_line,
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
from data_host.supernode import (
    RUNTIME_HOST,
    SUPERNODE_EXECUTABLE,
    SuperNodeSettings,
    SuperNodeTls,
    check_superlink_address,
    check_tls,
    default_auth_key,
    prepare_flwr_home,
    reachable_superlink,
    supernode_command,
    supernode_environment,
)
from data_host.terms import DatasetTerms, parse_price, parse_royalty
from data_host.trust import (
    TrustedCoordinator,
    check_can_pin,
    coordinator_from_info,
    pin_coordinator,
    trusted_coordinator,
)
from privacy.budget import Mechanism, PrivacyBudgetLedger
from privacy.errors import PrivacyError
from privacy.pii import PiiPolicy
from provenance.errors import ProvenanceError

if TYPE_CHECKING:
    from coordinator.superlink import SuperLinkSupervisor

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
    replace_coordinator: Annotated[
        bool,
        typer.Option(
            "--replace-coordinator",
            help="Trust this coordinator instead of the one the node registered with before.",
        ),
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Link this node's creator identity to your creator account and register its worker.

    Signs a proof that the creator DID belongs to the API key's account (for this
    coordinator only), then sends the worker's stored attestation evidence; the coordinator
    verifies both. Run again after `tally host attest` to replace the evidence.

    The node then trusts this coordinator's DID (kept in coordinator.json in the home):
    registering with a coordinator of another DID is refused unless --replace-coordinator
    is given.

    Example: tally host register --coordinator http://127.0.0.1:8400 --api-key "$KEY" --home ./alice
    """
    from coordinator.identity import sign_identity_link

    node = _home(home)
    with _failing_cleanly():
        evidence = load_evidence(node)
        creator_key = node.creator_key()
    with coordinator_client(coordinator, api_key) as client:
        info = client.info()
        with _failing_cleanly():
            # Refuse another coordinator before anything is sent to it.
            candidate = coordinator_from_info(info, client.base_url)
            check_can_pin(node, candidate, replace=replace_coordinator)
        account_id = str(client.whoami()["account"]["id"])
        with _failing_cleanly():
            proof = sign_identity_link(
                creator_key, account_id=account_id, audience=candidate.audience
            )
        identity = client.link_identity(proof.to_dict())
        host = client.register_host(node.config.creator_did, json.loads(evidence.to_json()))
    with _failing_cleanly():
        pinned = pin_coordinator(node, info, client.base_url, replace=replace_coordinator)
    if as_json:
        emit_json({"identity": identity, "host": host, "coordinator_did": pinned.did})
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
    console.print(Text("  coordinator ") + plain(pinned.did) + Text(" (trusted)"))


#: How long ``up`` gives the SuperNode (and its ClientApps) to stop before killing them.
SUPERNODE_STOP_SECONDS = 10.0


def _raise_interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _warn(message: str) -> None:
    from clients.cli.output import err_console

    err_console.print(Text("warning: ", style="bold yellow") + plain(message))


def _live_coordinator(
    node: NodeHome,
    trusted: TrustedCoordinator,
    url: str,
    api_key: str | None,
    *,
    explicit: bool,
) -> TrustedCoordinator | None:
    """Ask the coordinator at ``url`` who it is; refuse one that is not the pinned DID.

    ``None`` when the pinned coordinator (``explicit`` false) does not answer: the node then
    uses the SuperLink address pinned at registration. With ``api_key``, also checks that
    the coordinator knows this node's host.
    """
    from clients.sdk import ApiError, TallyClient, TransportError

    try:
        client = TallyClient(url, api_key.strip() if api_key else None)
    except ValueError as exc:
        fail(f"--coordinator: {exc}")
    with client:
        try:
            info = client.info()
        except TransportError as exc:
            if explicit:
                fail(f"the coordinator at {client.base_url} cannot be checked: {exc}")
            _warn(
                f"the coordinator at {client.base_url} did not answer ({exc}); using the "
                f"SuperLink address pinned at registration ({trusted.superlink_address})"
            )
            return None
        except ApiError as exc:
            fail(error_line(exc))
        with _failing_cleanly():
            live = coordinator_from_info(info, client.base_url)
        if live.did != trusted.did:
            fail(
                f"the coordinator at {client.base_url} is {live.did}, but this node trusts "
                f"{trusted.did} (pinned by `tally host register` at {trusted.url}); refusing "
                "to serve it. To move this node, run `tally host register "
                "--replace-coordinator` against the new coordinator"
            )
        if api_key:
            try:
                client.get_host(node.config.creator_did)
            except ApiError as exc:
                if exc.status == 404:
                    fail(
                        f"the coordinator at {client.base_url} does not know this node's host "
                        f"{node.config.creator_did}; run: tally host register --coordinator "
                        f"{client.base_url} --home {node.root}"
                    )
                fail(error_line(exc))
    return live


def _supernode_supervisor(
    node: NodeHome,
    superlink: str,
    port: int | None,
    root_certificates: Path | None,
    auth_key: Path | None,
) -> tuple[SuperLinkSupervisor, SuperNodeTls | None, list[str]]:
    """A supervisor (not started) for this node's SuperNode, every input checked; the TLS
    settings and the command line it runs."""
    from clients.local_server import free_port
    from coordinator.superlink import (
        SuperLinkError,
        SuperLinkSupervisor,
        SupervisedCommand,
        resolve_executable,
    )

    key = auth_key
    if key is None and root_certificates is not None:
        key = default_auth_key(node)
    tls = None if root_certificates is None else SuperNodeTls(root_certificates, key)
    with _failing_cleanly():
        settings = SuperNodeSettings(
            superlink=check_superlink_address(superlink),
            port=port if port is not None else free_port(RUNTIME_HOST),
            tls=tls,
        )
    try:
        executable = resolve_executable(SUPERNODE_EXECUTABLE, what="supernode executable")
        with _failing_cleanly():
            command = supernode_command(node, settings, executable=executable)
            prepare_flwr_home(node)
            logs = node.root / "logs"
            try:
                logs.mkdir(mode=0o700, exist_ok=True)
            except OSError as exc:
                fail(f"cannot create {logs}: {exc.strerror or exc}")
        program = SupervisedCommand(
            label="SuperNode",
            command=tuple(command),
            host=RUNTIME_HOST,
            port=settings.port,
            env=supernode_environment(node, bin_dir=executable.parent),
            log_file=logs / "supernode.log",
        )
        return SuperLinkSupervisor(program), tls, command
    except SuperLinkError as exc:
        fail(str(exc))


def _announce(
    node: NodeHome,
    trusted: TrustedCoordinator,
    supervisor: SuperLinkSupervisor,
    superlink: str,
    tls: SuperNodeTls | None,
    command: list[str],
    log_file: Path,
    *,
    as_json: bool,
) -> None:
    """Say what runs: one JSON line with ``--json``, else a few lines for a person."""
    port = int(supervisor.address.rpartition(":")[2])
    if as_json:
        line = {
            "status": "running",
            "node": node.config.name,
            "home": str(node.root),
            "coordinator_did": trusted.did,
            "superlink": superlink,
            "port": port,
            "pid": supervisor.pid,
            "tls": tls is not None,
            "auth_key": None
            if tls is None or tls.auth_private_key is None
            else str(tls.auth_private_key.expanduser().absolute()),
            "log": str(log_file),
            "command": command,
        }
        sys.stdout.write(json.dumps(line, sort_keys=True) + "\n")
        sys.stdout.flush()
        return
    console.print(
        Text(f"node {node.config.name}: SuperNode (pid {supervisor.pid}) on ")
        + plain(supervisor.address)
    )
    console.print(Text("  superlink    ") + plain(superlink))
    console.print(Text("  coordinator  ") + plain(trusted.did))
    if tls is None:
        console.print(Text("  tls          ") + Text("off (INSECURE: --insecure)", style="yellow"))
    else:
        auth = tls.auth_private_key
        console.print(
            Text("  tls          ")
            + plain(f"CA {tls.root_certificates}; SuperNode key {auth if auth else 'none'}")
        )
    console.print(Text("  log          ") + plain(str(log_file)))
    console.print(Text("  command      ") + plain(" ".join(command)))
    console.print("SuperNode running (Ctrl-C stops)")


@app.command("up")
def up(
    home: HomeOption = None,
    coordinator: Annotated[
        str | None,
        typer.Option(
            "--coordinator",
            envvar=COORDINATOR_ENV,
            metavar="URL",
            help="The coordinator's address (default: the one this node registered with); "
            "it must answer with the DID pinned at registration.",
            show_default=False,
            rich_help_panel="Coordinator",
        ),
    ] = None,
    api_key: ApiKeyOption = None,
    superlink: Annotated[
        str | None,
        typer.Option(
            "--superlink",
            metavar="HOST:PORT",
            help="The SuperLink's address (default: the one the coordinator advertises).",
            show_default=False,
        ),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=65535,
            help="The SuperNode's own Runtime API port on 127.0.0.1 (default: a free one); "
            "each node on a machine needs its own.",
            show_default=False,
        ),
    ] = None,
    root_certificates: Annotated[
        Path | None,
        typer.Option(
            "--root-certificates",
            metavar="CA.pem",
            help="Connect to the SuperLink over TLS, trusting this CA certificate "
            "(default: no TLS, --insecure).",
            show_default=False,
        ),
    ] = None,
    auth_key: Annotated[
        Path | None,
        typer.Option(
            "--auth-key",
            metavar="FILE",
            help="The SuperNode authentication key, an OpenSSH ECDSA private key whose .pub "
            "the coordinator registered (default with TLS: keys/supernode in the home, if "
            "present).",
            show_default=False,
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Run this node's Flower SuperNode in the foreground until Ctrl-C, SIGTERM or SIGHUP.

    The node must be registered (`tally host register` pins the coordinator's DID); a
    coordinator that answers with another DID is refused. The SuperNode connects to the
    coordinator's SuperLink (retrying while it is unreachable), serves its own Runtime API
    on a free loopback port, and runs the ClientApp for each message with this node's home.
    It is restarted if it dies; on exit it is stopped with everything it started. Prints what
    it runs (one JSON line with --json) once the SuperNode is up.

    Example: tally host up --home ./alice --coordinator http://127.0.0.1:8400
    """
    from clients.local_server import STOP_SIGNALS

    node = _home(home)
    with _failing_cleanly():
        trusted = trusted_coordinator(node)
        # What can be checked here is checked before anything is asked over the network.
        if superlink is not None:
            check_superlink_address(superlink)
        if root_certificates is not None:
            check_tls(SuperNodeTls(root_certificates, auth_key))
    if auth_key is not None and root_certificates is None:
        fail(
            "--auth-key needs TLS: SuperNode authentication works only over TLS; give "
            "--root-certificates CA.pem too"
        )
    url = coordinator if coordinator is not None else trusted.url
    live = _live_coordinator(node, trusted, url, api_key, explicit=coordinator is not None)
    with _failing_cleanly():
        if superlink is not None:
            address = check_superlink_address(superlink)
        else:
            known = live if live is not None else trusted
            address = reachable_superlink(known.superlink_address, known.url)
    supervisor, tls, command = _supernode_supervisor(
        node, address, port, root_certificates, auth_key
    )
    _run_in_foreground(
        node, trusted, supervisor, address, tls, command, STOP_SIGNALS, as_json=as_json
    )


def _run_in_foreground(
    node: NodeHome,
    trusted: TrustedCoordinator,
    supervisor: SuperLinkSupervisor,
    superlink: str,
    tls: SuperNodeTls | None,
    command: list[str],
    stop_signals: tuple[signal.Signals, ...],
    *,
    as_json: bool,
) -> None:
    """Start the SuperNode, wait for a stop signal (or for the supervisor to give up), and
    stop it and its children whatever happens."""
    from coordinator.superlink import SuperLinkError

    stopping = threading.Event()

    def _stop_requested(_signum: int, _frame: FrameType | None) -> None:
        stopping.set()

    # While starting, a stop signal interrupts the start (which then leaves nothing
    # behind); once it runs, a signal only asks the loop below to stop, so that a second
    # one cannot cut the SuperNode's shutdown short.
    previous = {sig: signal.signal(sig, _raise_interrupt) for sig in stop_signals}
    log_file = node.root / "logs" / "supernode.log"
    try:
        try:
            supervisor.start()
        except SuperLinkError as exc:
            fail(str(exc))
        for sig in stop_signals:
            signal.signal(sig, _stop_requested)
        _announce(node, trusted, supervisor, superlink, tls, command, log_file, as_json=as_json)
        while not stopping.wait(0.5):
            if supervisor.state == "failed":
                fail(
                    f"the SuperNode on {supervisor.address} kept exiting and was given up; "
                    f"see {log_file}"
                )
    except KeyboardInterrupt:
        if not as_json:
            console.print("interrupted while starting")
    finally:
        while True:
            try:
                supervisor.stop(timeout=SUPERNODE_STOP_SECONDS)
                break
            except KeyboardInterrupt:
                continue
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if not as_json:
        console.print("SuperNode stopped")


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
    royalty: Annotated[
        list[str] | None,
        typer.Option(
            help="A royalty payee and its share in basis points, DID=SHARE, e.g. "
            "did:key:z6Mk…=6000 (repeatable; shares add up to 10000; each DID must be linked "
            "to an account on the coordinator). Default: all to this node's creator DID."
        ),
    ] = None,
    royalty_remainder_to: Annotated[
        str | None,
        typer.Option(
            help="The --royalty payee DID that takes rounding leftovers (default: the first)."
        ),
    ] = None,
    home: HomeOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Hash, scan and sign a dataset, and register it on this node. The data stays in PATH.

    Example: tally host dataset add ./heart.csv --title "Heart study" --license CC-BY-4.0
    --price-per-sample 0.002 --currency USD --max-epsilon-per-job 3 --lifetime-epsilon 8

    Split the royalty 60/40 with a label: add --royalty did:key:z6MkAlice…=6000
    --royalty did:key:z6MkLabel…=4000 --royalty-remainder-to did:key:z6MkAlice…
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
            royalties=tuple(parse_royalty(text) for text in royalty or []),
            royalty_remainder_to=royalty_remainder_to,
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
