"""``tally coordinator …``: set up and run the marketplace's coordinator.

``init`` makes a home (keys, configuration, migrated database, the first admin key);
``up`` serves the HTTP API and supervises a Flower SuperLink until interrupted, then
stops both cleanly; ``migrate`` upgrades the schema; ``witness add`` configures a witness.
These run on the coordinator's own machine, against its home, not over HTTP.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer
from sqlalchemy.exc import SQLAlchemyError

from clients.cli.output import JsonFlag, console, emit_json, fail
from coordinator.errors import CoordinatorError
from coordinator.home import (
    DEFAULT_API_PORT,
    DEFAULT_SUPERLINK_PORT,
    CoordinatorHome,
    WitnessConfig,
    default_home,
    init_coordinator_home,
    open_coordinator_home,
    write_config,
)
from provenance.errors import ProvenanceError

if TYPE_CHECKING:
    from coordinator.superlink import SuperLinkSettings
    from coordinator.supernodes import FlowerConnection

app = typer.Typer(no_args_is_help=True, help="Set up and run the coordinator service.")
witness_app = typer.Typer(no_args_is_help=True, help="Witnesses that cosign the log.")
app.add_typer(witness_app, name="witness")
supernode_app = typer.Typer(
    no_args_is_help=True, help="Admit data hosts' SuperNodes by their public keys."
)
app.add_typer(supernode_app, name="supernode")

HomeOption = Annotated[
    Path | None,
    typer.Option(
        "--home",
        help="The coordinator's home (default: $TALLY_COORDINATOR_HOME or "
        "~/.tallystick/coordinator).",
        show_default=False,
    ),
]
DatabaseOption = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="SQLAlchemy URL, e.g. postgresql+psycopg://user@host/db (default: SQLite in the "
        "home).",
        show_default=False,
    ),
]


@contextmanager
def _failing_cleanly() -> Iterator[None]:
    try:
        yield
    except (CoordinatorError, ProvenanceError) as exc:
        fail(str(exc))
    except SQLAlchemyError as exc:
        reason = getattr(exc, "orig", None) or exc
        fail(f"the coordinator's database cannot be used: {reason}")


#: How long ``up`` waits for open requests when asked to stop, before closing them.
GRACEFUL_SHUTDOWN_SECONDS = 10


def _superlink_settings(opened: CoordinatorHome, port: int | None = None) -> SuperLinkSettings:
    """How this home's SuperLink runs (``port`` overrides the configured one)."""
    from coordinator.launch import superlink_settings

    return superlink_settings(opened, port)


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _home(home: Path | None) -> CoordinatorHome:
    with _failing_cleanly():
        return open_coordinator_home(home if home is not None else default_home())


@app.command("init")
def init(
    name: Annotated[
        str, typer.Option(help="The coordinator's name; the log origin is NAME.tallystick/log.")
    ],
    home: HomeOption = None,
    dev: Annotated[
        bool,
        typer.Option(
            "--dev",
            help="Development mode: accept INSECURE dev attestation evidence (one machine only).",
        ),
    ] = False,
    database_url: DatabaseOption = None,
    fee_bps: Annotated[
        int, typer.Option("--fee-bps", min=0, max=10_000, help="Platform fee in basis points.")
    ] = 1000,
    port: Annotated[int, typer.Option(min=1, max=65535, help="API port.")] = DEFAULT_API_PORT,
    superlink_port: Annotated[
        int, typer.Option(min=1, max=65535, help="Flower SuperLink port.")
    ] = DEFAULT_SUPERLINK_PORT,
    admin: Annotated[str, typer.Option(help="Name of the first admin account.")] = "admin",
    as_json: JsonFlag = False,
) -> None:
    """Create a coordinator home, migrate its database and make the first admin's API key.

    The admin key is printed once and stored nowhere; keep it.

    Example: tally coordinator init --name market --home ./coord --dev
    """
    from coordinator.service import bootstrap_admin, open_coordinator, prepare_database

    root = home if home is not None else default_home()
    with _failing_cleanly():
        created = init_coordinator_home(
            root,
            name,
            dev_mode=dev,
            database_url=database_url,
            platform_fee_bps=fee_bps,
            api_port=port,
            superlink_port=superlink_port,
        )
        try:
            prepare_database(created.database_url)
            coordinator = open_coordinator(created)
            try:
                admin_key = bootstrap_admin(coordinator, admin)
                info = coordinator.info()
            finally:
                coordinator.close()
        except BaseException:
            _remove_home(created)
            raise
    result = {
        "home": str(created.root),
        "name": name,
        "development_mode": dev,
        "url": f"http://127.0.0.1:{port}",
        "coordinator_did": info["coordinator_did"],
        "log_origin": info["log_origin"],
        "log_vkey": info["log_vkey"],
        "admin_api_key": admin_key,
    }
    if as_json:
        emit_json(result)
        return
    console.print(f"coordinator [bold]{name}[/] created at {created.root}")
    if dev:
        console.print("[bold yellow]development mode:[/] dev (INSECURE) attestation is accepted")
    console.print(f"coordinator key  {info['coordinator_did']}")
    console.print(f"log              {info['log_vkey']}")
    console.print(f"admin API key    {admin_key}   [dim](shown once; keep it)[/]")
    console.print(f"next: tally coordinator up --home {created.root}")


def _remove_home(home: CoordinatorHome) -> None:
    import shutil

    shutil.rmtree(home.root, ignore_errors=True)


@app.command("migrate")
def migrate(home: HomeOption = None, database_url: DatabaseOption = None) -> None:
    """Upgrade the coordinator's database schema to this version's newest revision.

    Example: tally coordinator migrate --home ./coord
    """
    from coordinator.database import current_revision, head_revision
    from coordinator.service import prepare_database
    from provenance.storage import make_engine

    opened = _home(home)
    url = database_url or opened.database_url
    with _failing_cleanly():
        prepare_database(url)
        engine = make_engine(url)
        revision = current_revision(engine)
        engine.dispose()
    console.print(f"database at revision {revision} (newest: {head_revision()})")


@app.command("up")
def up(
    home: HomeOption = None,
    host: Annotated[str | None, typer.Option(help="API address (default: from the home).")] = None,
    port: Annotated[int | None, typer.Option(min=1, max=65535, help="API port.")] = None,
    database_url: DatabaseOption = None,
    superlink_port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="SuperLink port (default: from the home).")
    ] = None,
    no_superlink: Annotated[
        bool, typer.Option("--no-superlink", help="Serve the API only; start no SuperLink.")
    ] = False,
) -> None:
    """Serve the coordinator API and supervise its Flower SuperLink until Ctrl-C.

    The SuperLink runs with runtime dependency installation disabled, with TLS and SuperNode
    authentication when the home configures certificates, and is restarted if it dies. On
    exit (Ctrl-C or SIGTERM) both stop cleanly.

    Example: tally coordinator up --home ./coord --port 8400
    """
    import uvicorn

    from clients.local_server import ForegroundServer
    from coordinator.api.app import create_app
    from coordinator.service import open_coordinator
    from coordinator.superlink import SuperLinkSupervisor

    opened = _home(home)
    config = opened.config
    with _failing_cleanly():
        coordinator = open_coordinator(opened, database_url=database_url)
    supervisor: SuperLinkSupervisor | None = None
    # Until the server takes over the signals, SIGTERM and SIGHUP end start-up as Ctrl-C
    # does, so that the ``finally`` below still stops a SuperLink that was already started.
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        if not no_superlink:
            with _failing_cleanly():
                settings = _superlink_settings(opened, superlink_port)
            (opened.root / "superlink").mkdir(mode=0o700, exist_ok=True)
            supervisor = SuperLinkSupervisor(settings)
            with _failing_cleanly():
                supervisor.start()
            coordinator.superlink_state = lambda: supervisor.state if supervisor else "stopped"
            coordinator.superlink = settings  # training runs go to this SuperLink
            console.print(f"SuperLink on {supervisor.address} (log: {settings.log_file})")
        coordinator.start()
        api_host = host or config.api_host
        api_port = port or config.api_port
        if config.dev_mode:
            console.print("[bold yellow]development mode:[/] dev (INSECURE) attestation accepted")
        console.print(f"coordinator API on http://{api_host}:{api_port}  (Ctrl-C stops)")
        logging.basicConfig(level=logging.WARNING)
        server = ForegroundServer(
            uvicorn.Config(
                create_app(coordinator),
                host=api_host,
                port=api_port,
                log_level="warning",
                access_log=False,
                server_header=False,
                # A client holding a request open must not hold the SuperLink's stop up.
                timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
            )
        )
        server.run()
        if not server.started:
            fail(f"the API could not listen on {api_host}:{api_port} (is the port in use?)")
    except KeyboardInterrupt:
        console.print("interrupted while starting")
    finally:
        # A second signal while stopping must not cut the SuperLink's shutdown short: it
        # interrupts ``stop``, which is then simply called again. (Ignoring the signals
        # instead would pass SIG_IGN on to a SuperLink restarted meanwhile.)
        while True:
            try:
                if supervisor is not None:
                    supervisor.stop()
                coordinator.close()
                break
            except KeyboardInterrupt:
                continue
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    console.print("coordinator stopped")


@witness_app.command("add")
def witness_add(
    name: Annotated[str, typer.Option(help="The witness's key name.")],
    vkey: Annotated[str, typer.Option(help="The witness's cosignature verifier key.")],
    url: Annotated[str, typer.Option(help="The witness's base URL (it serves /add-checkpoint).")],
    home: HomeOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Ask a witness to cosign this coordinator's checkpoints (takes effect at the next up).

    Example: tally coordinator witness add --name w1 --vkey "w1+1a2b3c4d+…" --url http://127.0.0.1:8480
    """
    from pydantic import ValidationError

    opened = _home(home)
    config = opened.config
    try:
        witness = WitnessConfig(name=name, vkey=vkey, url=url)
    except ValidationError as exc:
        error = exc.errors()[0]
        fail(f"--{error['loc'][0]}: {error['msg']}")
    if not vkey.startswith(f"{name}+"):
        fail(f"--vkey names key {vkey.split('+', 1)[0]!r}, not the witness {name!r}")
    if any(existing.name == name for existing in config.witnesses):
        fail(f"a witness named {name!r} is already configured")
    updated = config.model_copy(update={"witnesses": [*config.witnesses, witness]})
    write_config(opened.root, updated)
    if as_json:
        emit_json({"witnesses": [w.model_dump() for w in updated.witnesses]})
        return
    console.print(f"witness {name} at {url} added; restart the coordinator to use it")


@app.command("tls")
def tls(
    ca_cert: Annotated[Path, typer.Option("--ca-cert", help="The CA certificate (PEM).")],
    cert: Annotated[Path, typer.Option(help="The SuperLink's certificate (PEM).")],
    key: Annotated[Path, typer.Option(help="The certificate's private key (PEM).")],
    supernode_auth: Annotated[
        bool,
        typer.Option(
            "--supernode-auth/--no-supernode-auth",
            help="Admit only SuperNodes whose keys are registered (tally coordinator "
            "supernode register).",
        ),
    ] = True,
    home: HomeOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Serve the SuperLink over TLS, with SuperNode authentication (takes effect at next up).

    Example: tally coordinator tls --ca-cert ca.pem --cert superlink.pem --key superlink.key
    """
    from coordinator.home import SuperLinkConfig, TlsFiles

    opened = _home(home)
    files: dict[str, str] = {}
    for option, path in (("--ca-cert", ca_cert), ("--cert", cert), ("--key", key)):
        full = path.expanduser().absolute()
        try:
            head = full.read_bytes()[:4096] if full.is_file() else b""
        except OSError as exc:
            fail(f"{option} {full}: {exc.strerror or exc}")
        if b"-----BEGIN " not in head:
            fail(f"{option} {full} is not a PEM file")
        files[option] = str(full)
    link = opened.config.superlink
    updated = opened.config.model_copy(
        update={
            "superlink": SuperLinkConfig(
                host=link.host,
                port=link.port,
                tls=TlsFiles(
                    ca_certfile=files["--ca-cert"], certfile=files["--cert"], keyfile=files["--key"]
                ),
                supernode_auth=supernode_auth,
            )
        }
    )
    write_config(opened.root, updated)
    if as_json:
        emit_json(updated.superlink.model_dump())
        return
    auth = "on" if supernode_auth else "off"
    console.print(f"SuperLink TLS configured (SuperNode authentication {auth}); restart to use it")


def _flower(opened: CoordinatorHome) -> FlowerConnection:
    from coordinator.supernodes import FlowerConnection

    with _failing_cleanly():
        return FlowerConnection.write(opened.root / "flwr", _superlink_settings(opened))


@supernode_app.command("register")
def supernode_register(
    public_key: Annotated[Path, typer.Argument(help="The SuperNode's OpenSSH ECDSA public key.")],
    name: Annotated[str | None, typer.Option(help="A name for the SuperNode.")] = None,
    home: HomeOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Admit a data host's SuperNode: register its public key with the running SuperLink.

    The host makes its key pair with `ssh-keygen -t ecdsa -b 384 -N "" -f supernode` and
    sends only supernode.pub; its SuperNode then starts with
    --auth-supernode-private-key supernode.

    Example: tally coordinator supernode register alice-supernode.pub --name alice
    """
    from coordinator.supernodes import register_supernode

    connection = _flower(_home(home))
    with _failing_cleanly():
        answer = register_supernode(connection, public_key, name=name)
    if as_json:
        emit_json(answer)
        return
    console.print(f"registered SuperNode {answer.get('node-id')}")


@supernode_app.command("list")
def supernode_list(home: HomeOption = None, as_json: JsonFlag = False) -> None:
    """List the SuperNodes the running SuperLink knows, and whether each is online.

    Example: tally coordinator supernode list --json
    """
    from clients.cli.remote import compact_table, plain
    from coordinator.supernodes import list_supernodes

    connection = _flower(_home(home))
    with _failing_cleanly():
        nodes = list_supernodes(connection)
    if as_json:
        emit_json({"nodes": nodes})
        return
    if not nodes:
        console.print("no SuperNodes registered")
        return
    table = compact_table("node id", "status", "registered", "online since")
    for node in nodes:
        table.add_row(
            plain(node.get("node-id")),
            plain(node.get("status")),
            plain(node.get("created-at")),
            plain(node.get("online-at")),
        )
    console.print(table)


@supernode_app.command("unregister")
def supernode_unregister(
    node_id: Annotated[int, typer.Argument(min=0, help="The SuperNode's id (from list).")],
    home: HomeOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Remove a SuperNode: the SuperLink refuses it from then on.

    Example: tally coordinator supernode unregister 10449521302129572829
    """
    from coordinator.supernodes import unregister_supernode

    connection = _flower(_home(home))
    with _failing_cleanly():
        answer = unregister_supernode(connection, node_id)
    if as_json:
        emit_json(answer)
        return
    console.print(f"unregistered SuperNode {node_id}")
