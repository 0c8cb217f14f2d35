"""``sealtrail demo``: the whole job on the embedded default, with synthetic MCP traffic."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


def demo() -> None:
    """Run Sealtrail on its embedded default and drive synthetic agent traffic through it."""
    typer.echo(
        "The embedded default (SQLite and a local log, no servers) is not built yet, so there is "
        "no demo to run. `make test` runs the full suite against real PostgreSQL and Kafka.",
        err=True,
    )
    raise typer.Exit(1)
