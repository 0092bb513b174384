"""``tally witness …``: run a C2SP witness that cosigns other operators' log checkpoints.

A witness is run by someone other than the log operator. It keeps, per log it follows,
the latest tree it cosigned, and cosigns a new checkpoint only if it extends that tree;
so a log that showed two different histories would be caught. The commands here manage
the witness's home (``--home``) and serve it over HTTP; the home and the service live in
``clients.witness_service`` and the rules in ``provenance.tlog.witness``, not here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from clients.cli.output import JsonFlag, console, emit_json, fail
from clients.witness_service import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    WitnessHomeError,
    follow_log,
    init_witness_home,
    open_witness_home,
    serve_witness,
)
from provenance.errors import ProvenanceError

app = typer.Typer(no_args_is_help=True, help="Run a witness that cosigns other logs' checkpoints.")

HomeOption = Annotated[
    Path, typer.Option("--home", help="The witness's home directory.", show_default=False)
]
_MAX_VKEY_FILE_BYTES = 4096


@app.command("init")
def init(
    home: HomeOption,
    name: Annotated[str, typer.Option(help="The witness's key name, e.g. witness.example.com.")],
    as_json: JsonFlag = False,
) -> None:
    """Create a witness home: Ed25519 key (0600), witness.vkey, empty logs.json.

    Give witness.vkey to the operators of the logs you witness.
    An existing home is never overwritten.

    Example: tally witness init --home ./witness --name witness.example.com
    """
    try:
        created = init_witness_home(home, name)
    except (WitnessHomeError, ProvenanceError) as exc:
        fail(str(exc))
    result = {
        "home": str(created.root),
        "name": created.name,
        "verifier_key": created.verifier.vkey,
        "private_key": str(created.key_path),
        "verifier_key_file": str(created.vkey_path),
    }
    if as_json:
        emit_json(result)
        return
    console.print(f"witness [bold]{created.name}[/] created at {created.root}")
    console.print(f"private key   {created.key_path} (mode 0600)")
    console.print(f"verifier key  {created.verifier.vkey}", markup=False)
    console.print(f"next: tally witness follow --home {created.root} LOG_VKEY", markup=False)


def _read_vkey(value: str) -> str:
    """``value`` itself, or the first line of the file it names."""
    path = Path(value)
    if "\n" in value or not path.is_file():
        return value
    try:
        with path.open("rb") as handle:
            data = handle.read(_MAX_VKEY_FILE_BYTES + 1)
    except OSError as exc:
        fail(f"cannot read verifier key file {path}: {exc.strerror}")
    if len(data) > _MAX_VKEY_FILE_BYTES:
        fail(f"verifier key file {path} is over {_MAX_VKEY_FILE_BYTES} bytes")
    lines = data.decode("utf-8", errors="replace").strip().splitlines()
    if not lines:
        fail(f"verifier key file {path} is empty")
    return lines[0]


@app.command("follow")
def follow(
    vkey: Annotated[
        str,
        typer.Argument(
            help="The log's verifier key (name+keyid+key), or a file holding it (NAME.vkey)."
        ),
    ],
    home: HomeOption,
    as_json: JsonFlag = False,
) -> None:
    """Follow a log: cosign its checkpoints from now on (origin = key name).

    VKEY is the log's verifier key (name+keyid+key) or a file holding it.
    Restart a running `tally witness serve` to pick the change up.
    A log's key is never replaced: another key for a followed origin is refused.

    Example: tally witness follow --home ./witness keys/example.com_log.vkey
    """
    try:
        updated, log_key, added = follow_log(home, _read_vkey(vkey))
    except (WitnessHomeError, ProvenanceError) as exc:
        fail(str(exc))
    result = {
        "origin": log_key.name,
        "verifier_key": log_key.vkey,
        "added": added,
        "logs": sorted(updated.logs),
    }
    if as_json:
        emit_json(result)
        return
    verb = "now follows" if added else "already follows"
    console.print(f"witness {updated.name} {verb} log {log_key.name}", markup=False)
    console.print(f"it follows {len(updated.logs)} log(s); restart serve to apply")


@app.command("serve")
def serve(
    home: HomeOption,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = DEFAULT_HOST,
    port: Annotated[int, typer.Option(help="TCP port to listen on.")] = DEFAULT_PORT,
) -> None:
    """Serve the witness over HTTP (c2sp.org/tlog-witness POST /add-checkpoint).

    Cosigned sizes are kept in HOME/state.json: never delete it while the
    witness is in use, or it could be made to cosign a fork. Stop with Ctrl-C.

    Example: tally witness serve --home ./witness --port 8480
    """
    try:
        serve_witness(
            open_witness_home(home),
            host=host,
            port=port,
            announce=lambda line: console.print(line, markup=False),
        )
    except (WitnessHomeError, ProvenanceError) as exc:
        fail(str(exc))
