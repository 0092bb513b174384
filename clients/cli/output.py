"""Shared terminal output for the ``tally`` CLI: one console, JSON mode, failure lines."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

console = Console(highlight=False, emoji=False, soft_wrap=True)
#: The ``--json`` flag every command a script would read takes.
JsonFlag = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]

err_console = Console(stderr=True, highlight=False, emoji=False, soft_wrap=True)


def emit_json(value: Any) -> None:
    """Print ``value`` as JSON on stdout (for scripts)."""
    sys.stdout.write(json.dumps(value, indent=2, sort_keys=True) + "\n")


def fail(message: str, *, code: int = 1) -> NoReturn:
    """Print one line saying what failed, on stderr, and exit non-zero."""
    err_console.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    raise typer.Exit(code)


def emit_raw(text: str) -> None:
    """Print ``text`` exactly (signed notes must not be wrapped or restyled)."""
    sys.stdout.write(text)
    sys.stdout.flush()


def write_or_print(data: bytes, out: Path | None) -> None:
    """Write ``data`` to ``out`` if given, else print it exactly (it is UTF-8 text)."""
    if out is None:
        emit_raw(data.decode("utf-8"))
        return
    out.write_bytes(data)
    console.print(f"wrote {out}")
