"""Shared terminal output for the ``tally`` CLI: one console, JSON mode, failure lines."""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

import typer
from rich.console import Console

console = Console(highlight=False, emoji=False, soft_wrap=True)
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
