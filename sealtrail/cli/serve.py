"""``sealtrail serve``: the embedded default, everything in one process on one port.

Ingest, the ledger (local log, SQLite, checkpointer), the projector and the query API run in this
process and keep their data in one directory (``--data-dir``; see
:mod:`sealtrail.cli.embedded.datadir`). The first run creates the directory, its keys, the
``default`` tenant and two API keys, and prints their tokens once.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from sealtrail.cli.embedded.datadir import DEFAULT_MAX_BACKLOG, DEFAULT_PORT

DATA_DIR_HELP = "data directory (default: $SEALTRAIL_DATA_DIR, $XDG_DATA_HOME/sealtrail or ./sealtrail-data)"


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)


def first_run_text(data_dir: Path, url: str, tenant: str, tokens: dict[str, str]) -> str:
    """What the first run prints: the tokens (shown only now) and how to make more."""
    lines = [f"Sealtrail: first run; created {data_dir} with tenant {tenant!r}.",
             "These tokens are shown only now; store them in a secret store:"]
    lines += [f"  {role:9} token  {token}" for role, token in tokens.items()]
    lines += [
        "More keys (roles gateway, investigator, dpo, auditor, operator):",
        f"  sealtrail admin key create --data-dir {data_dir} --tenant {tenant} --role investigator",
        f"Send events:  curl -X POST {url}/v1/events -H 'Authorization: Bearer <gateway token>' ...",
        f"Verify:       sealtrail verify --url {url} --log {tenant} --token <auditor token>",
    ]
    return "\n".join(lines)


def _refuse_if_served(log_dir: Path) -> None:
    """Fail with one line when another process has the data directory's local log open.

    The log takes the same lock at start and fails then anyway; this only says so before uvicorn
    starts, without a traceback.
    """
    import fcntl
    import os

    lock = log_dir / ".lock"
    if not lock.exists():
        return
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        typer.echo(f"error: {log_dir.parent} is already being served by another process", err=True)
        raise typer.Exit(1) from None
    finally:
        os.close(fd)  # releases the lock if it was taken


def serve(
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help=DATA_DIR_HELP)] = None,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port of the ingest and query routes")] = DEFAULT_PORT,
    max_backlog: Annotated[int, typer.Option(
        min=1, help="records the ledger may be behind before new event batches are answered 429")
    ] = DEFAULT_MAX_BACKLOG,
) -> None:
    """Run ingest, ledger, projector and query in one process, with SQLite and a local log."""
    import uvicorn

    from sealtrail.cli.embedded.app import EmbeddedOptions, create_app
    from sealtrail.cli.embedded.datadir import DataDir, default_data_dir, initialise
    from sealtrail.errors import SealtrailError
    from sealtrail.infra.logs import configure_logging

    data = DataDir(data_dir or default_data_dir())
    _refuse_if_served(data.log)
    try:
        first = asyncio.run(initialise(data))
        app = create_app(data, options=EmbeddedOptions(max_backlog=max_backlog, tune_gc=True))
    except SealtrailError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None
    url = f"http://{host}:{port}"
    if first is not None:
        tokens = {role: issued.token for role, issued in first.tokens.items()}
        typer.echo(first_run_text(data.root, url, first.tenant, tokens))
    typer.echo(f"Sealtrail serving {data.root} on {url} (ingest and query; Ctrl-C stops)", err=True)
    configure_logging(data.settings().log_level)
    uvicorn.run(app, host=host, port=port, log_config=None, access_log=False, server_header=False)
