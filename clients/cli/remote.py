"""What the ``tally`` commands that talk to a coordinator over HTTP share.

The ``--coordinator`` and ``--api-key`` options (also read from ``TALLY_COORDINATOR`` and
``TALLY_API_KEY``), :func:`coordinator_client`, which opens a :class:`TallyClient` and turns
anything the coordinator or the network refuses into one ``error:`` line and exit status 1,
and small helpers that format money, times and untrusted text for the terminal.

This module must never print, log or put into an error message the API key, and must never
decide what a request means: the coordinator answers, the commands show the answer.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Any, Final

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from billing.errors import BillingError
from billing.pricing import format_minor
from clients.cli.output import fail
from clients.sdk import ApiError, TallyClient, TransportError

__all__ = [
    "API_KEY_ENV",
    "COORDINATOR_ENV",
    "DEFAULT_COORDINATOR",
    "ApiKeyOption",
    "CoordinatorOption",
    "compact_table",
    "coordinator_client",
    "error_line",
    "money",
    "plain",
    "when",
]

#: Where the commands look for the coordinator when no ``--coordinator`` is given.
DEFAULT_COORDINATOR: Final = "http://127.0.0.1:8400"
COORDINATOR_ENV: Final = "TALLY_COORDINATOR"
API_KEY_ENV: Final = "TALLY_API_KEY"

CoordinatorOption = Annotated[
    str,
    typer.Option(
        "--coordinator",
        envvar=COORDINATOR_ENV,
        metavar="URL",
        help="The coordinator's address.",
        rich_help_panel="Coordinator",
    ),
]
ApiKeyOption = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        envvar=API_KEY_ENV,
        metavar="KEY",
        help="Your API key (tally_…); prefer setting TALLY_API_KEY, which stays out of `ps`.",
        show_default=False,
        rich_help_panel="Coordinator",
    ),
]


def error_line(error: ApiError) -> str:
    """The one line that says what the coordinator (or the network) refused, and how to fix
    it where the status makes that plain. Never contains the API key."""
    if isinstance(error, TransportError):
        return str(error)
    line = str(error)
    if error.status == 401:
        line += f"; check --api-key or {API_KEY_ENV}"
    return line


@contextmanager
def coordinator_client(url: str, api_key: str | None) -> Iterator[TallyClient]:
    """A client for the coordinator at ``url``, authenticated with ``api_key``.

    Inside the block, an :class:`ApiError` (including :class:`TransportError`) or a
    ``ValueError`` from the SDK's own checks of what was typed becomes one ``error:`` line
    on stderr and exit status 1.
    """
    if api_key is None or not api_key.strip():
        fail(f"no API key: give --api-key KEY or set {API_KEY_ENV}")
    try:
        client = TallyClient(url, api_key.strip())
    except ValueError as exc:
        fail(f"{exc}")
    try:
        with client:
            yield client
    except ApiError as exc:
        fail(error_line(exc))
    except ValueError as exc:
        fail(str(exc))


def money(amount_minor: int | None, currency: str | None) -> str:
    """``1234, "USD"`` → ``"12.34 USD"``; never used for arithmetic."""
    if amount_minor is None or currency is None:
        return "-"
    try:
        return format_minor(int(amount_minor), str(currency))
    except (BillingError, ValueError):
        return f"{amount_minor} minor units of {currency}"


def when(value: str | None, *, day: bool = False) -> str:
    """An ISO 8601 time as ``YYYY-MM-DD HH:MM:SS UTC`` (just ``YYYY-MM-DD`` with ``day``;
    ``-`` when there is none)."""
    if not value:
        return "-"
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return str(value)
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC)
    if day:
        return f"{parsed:%Y-%m-%d}"
    return f"{parsed:%Y-%m-%d %H:%M:%S}" + (" UTC" if parsed.tzinfo is not None else "")


def compact_table(*headers: str) -> Table:
    """A table without side borders whose columns sit close, to fit 80-column terminals."""
    return Table(
        *headers, box=box.SIMPLE_HEAD, collapse_padding=True, pad_edge=False, show_edge=False
    )


def plain(value: Any) -> Text:
    """``value`` as terminal text that is never read as Rich markup and carries no control
    characters: for anything the coordinator or another party chose (titles, names, reasons).
    """
    if value is None:
        return Text("-")
    return Text(str(value))
