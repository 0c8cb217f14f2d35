"""The ``sealtrail`` command line."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="sealtrail",
    help="Sealtrail: a tamper-evident flight recorder for AI-agent tool calls.",
    no_args_is_help=True,
    add_completion=False,
)


def main() -> None:
    """Console-script entry point."""
    _register()
    app()


def _register() -> None:
    # Sub-commands live in their own modules; importing them here keeps `sealtrail --help` fast
    # and lets the light (library-only) install work without the server extras.
    from sealtrail.cli import commands

    commands.register(app)
