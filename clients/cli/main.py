"""The ``tally`` command line: one entry point, sub-commands grouped by who uses them."""

from __future__ import annotations

import typer

from clients.cli import host, log, verify
from clients.cli.demo import demo
from clients.cli.keys import keygen

app = typer.Typer(
    name="tally",
    no_args_is_help=True,
    rich_markup_mode="rich",
    help="Tallystick: federated training on paid data, with proofs anyone can verify.",
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.command("demo", rich_help_panel="Start here")(demo)
app.command("keygen", rich_help_panel="Everyone")(keygen)
app.add_typer(host.app, name="host", rich_help_panel="Creators")
app.add_typer(verify.app, name="verify", rich_help_panel="Auditors")
app.add_typer(log.app, name="log", rich_help_panel="Log operators")

if __name__ == "__main__":  # pragma: no cover
    app()
