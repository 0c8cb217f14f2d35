"""The ``sealtrail`` command line."""

from __future__ import annotations

import functools

import typer

app = typer.Typer(
    name="sealtrail",
    help="Sealtrail: a tamper-evident flight recorder for AI-agent tool calls.",
    no_args_is_help=True,
    add_completion=False,
)


def main() -> None:
    """Console-script entry point. A Sealtrail error that no command turned into its own message
    (a setting refused while a service starts, say) ends the run as one line, never a traceback."""
    from sealtrail.errors import SealtrailError

    _register()
    try:
        app()
    except SealtrailError as e:
        typer.echo("error: " + " ".join(str(e).split()), err=True)
        raise SystemExit(1) from None


@functools.cache
def _register() -> None:
    # Once per process: each call would attach every command again, and the app would grow (and
    # slow down) with every in-process invocation, as a test suite makes thousands of.
    # Sub-commands live in their own modules; importing them here keeps `sealtrail --help` fast
    # and lets the light (library-only) install work without the server extras.
    from sealtrail.cli import commands

    commands.register(app)
