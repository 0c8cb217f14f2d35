"""``sealtrail serve``: the embedded default, everything in one process on one port.

Ingest, the ledger (local log, SQLite, checkpointer), the projector and the query API run in this
process and keep their data in one directory (``--data-dir``; see
:mod:`sealtrail.cli.embedded.datadir`). The first run creates the directory, its keys, the
``default`` tenant and two API keys, and prints their tokens once.

The address is bound before the data directory is prepared: a port in use fails with one line
before any key is created or any token printed, so the tokens printed always belong to a server
that is listening. Keys lost later are replaced with ``sealtrail admin key create --data-dir``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from sealtrail.cli.embedded.datadir import DEFAULT_MAX_BACKLOG, DEFAULT_PORT
from sealtrail.cli.embedded.logretention import DEFAULT_LOG_RETENTION_INTERVAL_S, DEFAULT_LOG_RETENTION_S
from sealtrail.cli.serving import PORT_MAX, PORT_MIN, error_exit
from sealtrail.infra.locallog import DEFAULT_SEGMENT_BYTES

DATA_DIR_HELP = "data directory (default: $SEALTRAIL_DATA_DIR, $XDG_DATA_HOME/sealtrail or ~/.local/share/sealtrail)"


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
        f"Verify:       sealtrail admin key create --data-dir {data_dir} --tenant {tenant} --role auditor",
        f"              SEALTRAIL_TOKEN=<auditor token> sealtrail verify --url {url} --log {tenant}",
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
    port: Annotated[int, typer.Option(min=PORT_MIN, max=PORT_MAX, help="port of the ingest and query routes")] = (
        DEFAULT_PORT),
    max_backlog: Annotated[int, typer.Option(
        min=1, help="records the ledger may be behind before new event batches are answered 429")
    ] = DEFAULT_MAX_BACKLOG,
    witness_config: Annotated[Path | None, typer.Option(
        "--witness-config", envvar="SEALTRAIL_WITNESS_CONFIG",
        help="TOML file of the witnesses every checkpoint is submitted to, and the quorum (docs/witness.md)")
    ] = None,
    log_replay_window: Annotated[float, typer.Option(
        "--log-replay-window", min=0, envvar="SEALTRAIL_LOG_REPLAY_WINDOW_S",
        help="seconds the local log keeps records after they are sequenced (0: trimmed at the next pass)")
    ] = DEFAULT_LOG_RETENTION_S,
    log_trim_interval: Annotated[float, typer.Option(
        "--log-trim-interval", min=0.05, envvar="SEALTRAIL_LOG_TRIM_INTERVAL_S",
        help="seconds between two passes trimming the local log and the SQLite WAL")
    ] = DEFAULT_LOG_RETENTION_INTERVAL_S,
    log_segment_bytes: Annotated[int, typer.Option(
        "--log-segment-bytes", min=4096, envvar="SEALTRAIL_LOG_SEGMENT_BYTES",
        help="size at which a local-log segment is sealed (trimming deletes whole segments)")
    ] = DEFAULT_SEGMENT_BYTES,
) -> None:
    """Run ingest, ledger, projector and query in one process, with SQLite and a local log."""
    from sealtrail.cli.embedded.app import EmbeddedOptions, create_app
    from sealtrail.cli.embedded.datadir import DataDir, default_data_dir, initialise
    from sealtrail.cli.serving import AppRunner, listen
    from sealtrail.errors import SealtrailError
    from sealtrail.infra.logs import configure_logging
    from sealtrail.infra.witnessconfig import load_witness_config

    data = DataDir(data_dir or default_data_dir())
    if data.root.exists() and not data.root.is_dir():
        raise error_exit(f"--data-dir {data.root} is not a directory")
    _refuse_if_served(data.log)
    sock = listen(host, port)  # before the first run creates keys: no tokens for a server that cannot listen
    try:
        witnesses = None if witness_config is None else load_witness_config(witness_config)
        first = asyncio.run(initialise(data))
        app = create_app(data, options=EmbeddedOptions(max_backlog=max_backlog, tune_gc=True,
                                                       witnesses=witnesses, log_retention_s=log_replay_window,
                                                       log_retention_interval_s=log_trim_interval,
                                                       log_segment_bytes=log_segment_bytes))
    except SealtrailError as e:
        sock.close()
        raise error_exit(str(e)) from None
    except OSError as e:
        sock.close()
        where = e.filename or data.root
        raise error_exit(f"cannot prepare the data directory {data.root}: {where}: "
                         f"{e.strerror or type(e).__name__}") from None
    url = f"http://{host}:{port}"
    if first is not None:
        tokens = {role: issued.token for role, issued in first.tokens.items()}
        typer.echo(first_run_text(data.root, url, first.tenant, tokens))
    typer.echo(f"Sealtrail serving {data.root} on {url} (ingest and query; Ctrl-C stops)", err=True)
    typer.echo(f"Console: {url}/console (sign in with an investigator, dpo or auditor key)", err=True)
    configure_logging(data.settings().log_level)
    AppRunner(app, sock).run()
