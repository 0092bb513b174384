"""The ``tally`` command line: one entry point, sub-commands grouped by who uses them.

Each sub-command's module is imported only when that sub-command runs (or its own
``--help`` is shown): ``tally --help`` lists them from the one-line summaries below, so
the command line starts fast however heavy a command's imports are. This module must never
import a sub-command's module at start-up; a summary here must match the sub-command's own
help (a test checks).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from difflib import get_close_matches

import click
import typer
import typer.main
from typer.core import TyperCommand, TyperGroup


@dataclass(frozen=True)
class LazyCommand:
    """Where a sub-command lives and how ``tally --help`` lists it before it is imported.

    ``attribute`` names a ``typer.Typer`` (a command group) or a command function.
    """

    module: str
    attribute: str
    summary: str
    panel: str


#: Every sub-command of ``tally``, in the order ``tally --help`` lists them.
COMMANDS: dict[str, LazyCommand] = {
    "demo": LazyCommand(
        "clients.cli.demo",
        "demo",
        "Run the marketplace on this machine: coordinator, witness, three hosts, a funded job.",
        "Start here",
    ),
    "keygen": LazyCommand(
        "clients.cli.keys",
        "keygen",
        "Create an Ed25519 key: NAME.key (private, mode 0600), NAME.pub (PEM), NAME.vkey.",
        "Everyone",
    ),
    "account": LazyCommand(
        "clients.cli.account", "app", "Accounts and API keys on a coordinator.", "Everyone"
    ),
    "catalog": LazyCommand(
        "clients.cli.catalog",
        "app",
        "Search the dataset catalog; revoke your listings.",
        "Buyers",
    ),
    "job": LazyCommand(
        "clients.cli.job", "app", "Price, create, fund, follow and cancel jobs.", "Buyers"
    ),
    "billing": LazyCommand(
        "clients.cli.billing",
        "app",
        "Ledger balances, statements, payouts and onboarding (money follows the proofs).",
        "Everyone",
    ),
    "dispute": LazyCommand(
        "clients.cli.dispute",
        "app",
        "Open, show and resolve disputes over what a job paid.",
        "Everyone",
    ),
    "host": LazyCommand("clients.cli.host", "app", "Run a creator's data-host node.", "Creators"),
    "verify": LazyCommand(
        "clients.cli.verify", "app", "Verify signed records offline.", "Auditors"
    ),
    "coordinator": LazyCommand(
        "clients.cli.coordinator", "app", "Set up and run the coordinator service.", "Operators"
    ),
    "log": LazyCommand(
        "clients.cli.log", "app", "Build and inspect a local transparency log.", "Log operators"
    ),
    "witness": LazyCommand(
        "clients.cli.witness",
        "app",
        "Run a witness that cosigns other logs' checkpoints.",
        "Log operators",
    ),
}


def _tally() -> None:
    """Tallystick: federated training on paid data, with proofs anyone can verify."""


def load_command(name: str) -> click.Command:
    """Import sub-command ``name`` and build its Click command, as ``add_typer`` (or
    ``command``) on the ``tally`` app would have."""
    entry = COMMANDS[name]
    target = getattr(importlib.import_module(entry.module), entry.attribute)
    holder = typer.Typer(add_completion=False, rich_markup_mode="rich")
    holder.callback()(_tally)
    if isinstance(target, typer.Typer):
        holder.add_typer(target, name=name, rich_help_panel=entry.panel)
    else:
        holder.command(name, rich_help_panel=entry.panel)(target)
    group = typer.main.get_command(holder)
    if not isinstance(group, click.Group):  # pragma: no cover - a callback makes a group
        raise TypeError(f"building the {name!r} command gave {type(group).__name__}")
    return group.commands[name]


class LazyGroup(TyperGroup):
    """The ``tally`` group: lists sub-commands from ``COMMANDS`` and imports one only when
    it is asked for."""

    _listing = False

    def list_commands(self, ctx: click.Context) -> list[str]:
        """The sub-commands in ``COMMANDS`` order, loaded or not."""
        added = [name for name in super().list_commands(ctx) if name not in COMMANDS]
        return [*COMMANDS, *added]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The command ``cmd_name``: a listing stand-in while help is printed, else the real
        command (imported on first use)."""
        command = super().get_command(ctx, cmd_name)
        if command is not None or cmd_name not in COMMANDS:
            return command
        entry = COMMANDS[cmd_name]
        if self._listing:
            return TyperCommand(name=cmd_name, help=entry.summary, rich_help_panel=entry.panel)
        command = load_command(cmd_name)
        self.add_command(command, cmd_name)
        return command

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The group's help, listing sub-commands without importing them."""
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        """As Click does, suggesting close names among all sub-commands on a typo."""
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as error:
            if args and "Did you mean" not in error.message:
                matches = get_close_matches(args[0], self.list_commands(ctx))
                if matches:
                    suggestions = ", ".join(repr(match) for match in matches)
                    message = f"{error.message.rstrip('.')}. Did you mean {suggestions}?"
                    raise click.UsageError(message, ctx=error.ctx) from None
            raise


app = typer.Typer(
    name="tally",
    cls=LazyGroup,
    no_args_is_help=True,
    rich_markup_mode="rich",
    help="Tallystick: federated training on paid data, with proofs anyone can verify.",
    context_settings={"help_option_names": ["-h", "--help"]},
)


app.callback()(_tally)


if __name__ == "__main__":  # pragma: no cover
    app()
