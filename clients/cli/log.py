"""``tally log …``: build and inspect a local transparency log (a SQLite file) by hand."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from clients.cli.output import JsonFlag, console, emit_json, emit_raw, fail, write_or_print
from clients.cli.verify import read_input
from provenance.errors import ProvenanceError
from provenance.keys import load_signing_key
from provenance.merkle import leaf_hash
from provenance.note import NoteSigner
from provenance.storage import make_engine, sqlite_url
from provenance.tlog.log import TransparencyLog

app = typer.Typer(no_args_is_help=True, help="Build and inspect a local transparency log.")

LogOption = Annotated[Path, typer.Option("--log", help="The log's SQLite file.")]


def open_log(path: Path, *, key: Path | None = None, origin: str | None = None) -> TransparencyLog:
    """Open the log at ``path``; with ``key`` it can append (``origin`` creates a new log).

    The key is loaded before the database is touched, so a refused key creates nothing.
    """
    try:
        if not path.exists():
            if key is None:
                fail(f"log {path} does not exist")
            if origin is None:
                fail(f"{path} does not exist; give --origin to create a new log")
            signer = NoteSigner(origin, load_signing_key(key))
            return TransparencyLog.create(make_engine(sqlite_url(path)), signer)
        signing_key = load_signing_key(key) if key is not None else None
        engine = make_engine(sqlite_url(path))
        stored = TransparencyLog.open(engine)
        if signing_key is None:
            return stored
        if origin is not None and origin != stored.origin:
            fail(f"--origin {origin!r} does not match the log's origin {stored.origin!r}")
        return TransparencyLog.open(engine, NoteSigner(stored.origin, signing_key))
    except ProvenanceError as exc:
        fail(str(exc))


@app.command("append")
def append(
    log: LogOption,
    key: Annotated[Path, typer.Option(help="The log's private key file (from tally keygen).")],
    files: Annotated[
        list[Path] | None, typer.Argument(help="Files whose bytes become one entry each.")
    ] = None,
    text: Annotated[
        list[str] | None, typer.Option(help="An entry given as text (repeatable).")
    ] = None,
    origin: Annotated[
        str | None, typer.Option(help="Origin of a new log (must be the key's name).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Append entries in one atomic batch and print the new signed checkpoint.

    Entries the log already holds keep their index and are not appended again.

    Example: tally log append --log log.db --key keys/example.com_log.key
    --origin example.com/log --text hello
    """
    entries = [read_input(path, "entry file") for path in files or []]
    entries += [item.encode("utf-8") for item in text or []]
    if not entries:
        fail("nothing to append: give files or --text")
    transparency_log = open_log(log, key=key, origin=origin)
    try:
        result = transparency_log.append(entries)
    except ProvenanceError as exc:
        fail(str(exc))
    if as_json:
        emit_json(
            {
                "indexes": list(result.indexes),
                "new_entries": result.new_entries,
                "size": result.size,
                "checkpoint": result.checkpoint.decode("utf-8"),
            }
        )
        return
    console.print(
        f"appended {result.new_entries} new entr{'y' if result.new_entries == 1 else 'ies'} "
        f"at {', '.join(map(str, result.indexes))}; size is now {result.size}"
    )
    emit_raw(result.checkpoint.decode("utf-8"))


@app.command("checkpoint")
def checkpoint(
    log: LogOption,
    size: Annotated[int | None, typer.Option(help="A past tree size (default: latest).")] = None,
    out: Annotated[Path | None, typer.Option(help="Write the checkpoint to this file.")] = None,
) -> None:
    """Print the log's latest signed checkpoint (or the one for --size).

    Example: tally log checkpoint --log log.db --out checkpoint.txt
    """
    try:
        note = open_log(log).checkpoint(size)
    except ProvenanceError as exc:
        fail(str(exc))
    write_or_print(note, out)


@app.command("proof")
def proof(
    log: LogOption,
    index: Annotated[int | None, typer.Option(help="The entry's index.")] = None,
    leaf_file: Annotated[
        Path | None, typer.Option(help="Find the entry by its bytes instead of --index.")
    ] = None,
    size: Annotated[
        int | None, typer.Option(help="Prove against the checkpoint of this size.")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Write the tlog-proof to this file.")] = None,
) -> None:
    """Print a C2SP tlog-proof that an entry is in the log.

    Example: tally log proof --log log.db --index 0 --out entry.tlog-proof
    """
    if (index is None) == (leaf_file is None):
        fail("give exactly one of --index, --leaf-file")
    transparency_log = open_log(log)
    try:
        if leaf_file is not None:
            index = transparency_log.index_of(leaf_hash(read_input(leaf_file, "leaf file")))
        data = transparency_log.tlog_proof(int(index or 0), size).to_bytes()
    except ProvenanceError as exc:
        fail(str(exc))
    write_or_print(data, out)


@app.command("consistency")
def consistency(
    log: LogOption,
    old: Annotated[int, typer.Option(help="The older tree size.")],
    new: Annotated[int | None, typer.Option(help="The newer tree size (default: latest).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Print the RFC 9162 consistency proof between two tree sizes (base64, one per line).

    Example: tally log consistency --log log.db --old 3
    """
    transparency_log = open_log(log)
    try:
        hashes = transparency_log.consistency_proof(old, new)
    except ProvenanceError as exc:
        fail(str(exc))
    encoded = [base64.b64encode(item).decode("ascii") for item in hashes]
    if as_json:
        emit_json({"old": old, "new": new or transparency_log.size, "proof": encoded})
        return
    for line in encoded:
        console.print(line)


@app.command("tiles")
def tiles(
    log: LogOption,
    out: Annotated[Path, typer.Option(help="Directory to write the static layout into.")],
    as_json: JsonFlag = False,
) -> None:
    """Write the log as C2SP tlog-tiles files (checkpoint, tile/…, tile/entries/…).

    Serve DIR with any static web server and standard tlog clients can read the log.

    Example: tally log tiles --log log.db --out public/
    """
    transparency_log = open_log(log)
    size = transparency_log.size
    written = 0
    with Progress(
        TextColumn("writing tiles"),
        BarColumn(),
        MofNCompleteColumn(),
        console=console,
        disable=as_json,
    ) as progress:
        task = progress.add_task("tiles", total=None)
        try:
            for relative, content in transparency_log.static_layout(size):
                target = out / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                temporary = target.with_name(target.name + ".tmp")
                temporary.write_bytes(content)
                temporary.replace(target)
                written += 1
                progress.advance(task)
        except ProvenanceError as exc:
            fail(str(exc))
    if as_json:
        emit_json({"size": size, "files": written, "out": str(out)})
        return
    console.print(f"wrote {written} files for tree size {size} under {out}")
