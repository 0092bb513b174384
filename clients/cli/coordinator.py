"""``tally coordinator …``: set up and run the marketplace's coordinator.

``init`` makes a home (keys, configuration, migrated database, the first admin key);
``up`` serves the HTTP API and supervises a Flower SuperLink until interrupted, then
stops both cleanly; ``migrate`` upgrades the schema; ``witness add`` configures a witness.
These run on the coordinator's own machine, against its home, not over HTTP.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

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

app = typer.Typer(no_args_is_help=True, help="Set up and run the coordinator service.")
witness_app = typer.Typer(no_args_is_help=True, help="Witnesses that cosign the log.")
app.add_typer(witness_app, name="witness")

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

    from coordinator.api.app import create_app
    from coordinator.service import open_coordinator
    from coordinator.superlink import SuperLinkSettings, SuperLinkSupervisor, SuperLinkTls

    opened = _home(home)
    config = opened.config
    with _failing_cleanly():
        coordinator = open_coordinator(opened, database_url=database_url)
    supervisor: SuperLinkSupervisor | None = None
    try:
        if not no_superlink:
            tls = config.superlink.tls
            settings = SuperLinkSettings(
                host=config.superlink.host,
                port=superlink_port or config.superlink.port,
                database=opened.root / "superlink" / "state.db",
                tls=None
                if tls is None
                else SuperLinkTls(Path(tls.ca_certfile), Path(tls.certfile), Path(tls.keyfile)),
                supernode_auth=config.superlink.supernode_auth,
                log_file=opened.root / "logs" / "superlink.log",
            )
            (opened.root / "superlink").mkdir(mode=0o700, exist_ok=True)
            supervisor = SuperLinkSupervisor(settings)
            with _failing_cleanly():
                supervisor.start()
            coordinator.superlink_state = lambda: supervisor.state if supervisor else "stopped"
            console.print(f"SuperLink on {supervisor.address} (log: {settings.log_file})")
        coordinator.start()
        api_host = host or config.api_host
        api_port = port or config.api_port
        if config.dev_mode:
            console.print("[bold yellow]development mode:[/] dev (INSECURE) attestation accepted")
        console.print(f"coordinator API on http://{api_host}:{api_port}  (Ctrl-C stops)")
        logging.basicConfig(level=logging.WARNING)
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(coordinator),
                host=api_host,
                port=api_port,
                log_level="warning",
                access_log=False,
                server_header=False,
            )
        )
        server.run()
        if not server.started:
            fail(f"the API could not listen on {api_host}:{api_port} (is the port in use?)")
    finally:
        if supervisor is not None:
            supervisor.stop()
        coordinator.close()
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
