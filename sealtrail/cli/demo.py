"""``sealtrail demo``: the whole job on the embedded default, with synthetic MCP traffic.

Starts the embedded server (``sealtrail serve``'s app) on a temporary data directory and a free
port in a background thread, sends the scenario of :mod:`sealtrail.cli.demo_traffic` through the
gateway SDK, then walks an investigator's, a DPO's and an auditor's tasks over HTTP
(:mod:`sealtrail.cli.demo_report`) and finishes with the full verification that
``sealtrail verify --url`` runs. Exits 0 when every step succeeded.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def _server(data_dir: Path, port: int) -> Iterator[str]:
    """The embedded app under uvicorn in a thread of its own, until the block ends."""
    import httpx
    import uvicorn

    from sealtrail.cli.embedded.app import create_app
    from sealtrail.cli.embedded.datadir import DataDir

    config = uvicorn.Config(create_app(DataDir(data_dir)), host="127.0.0.1", port=port, log_config=None,
                            access_log=False, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="sealtrail-serve", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the embedded server did not start")
        time.sleep(0.05)
    httpx.get(url + "/v1/keys").raise_for_status()
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=30)


async def _send(url: str, token: str, events: list[dict[str, Any]]) -> int:
    """Send every event through the SDK with a progress bar; return how many were accepted."""
    from rich.progress import Progress

    from sealtrail.sdk.client import Accepted, Rejected, SealtrailClient

    rejected: list[Rejected] = []
    with Progress(transient=False) as progress:
        bar = progress.add_task("gateway SDK -> POST /v1/events", total=len(events))

        def accepted(items: list[Accepted]) -> None:
            progress.advance(bar, len(items))

        async with SealtrailClient(url, token, batch_max=500, flush_interval_s=0.05,
                                   on_accepted=accepted, on_rejected=rejected.extend) as client:
            for event in events:
                await client.send(event)
    if rejected:
        raise RuntimeError(f"{len(rejected)} events rejected, first: {rejected[0].title}: {rejected[0].detail}")
    return len(events)


def demo() -> None:
    """Run Sealtrail on its embedded default and drive synthetic agent traffic through it."""
    from sealtrail.cli.embedded.datadir import DataDir, initialise
    from sealtrail.infra.auth import Role

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="sealtrail-demo-") as tmp:
        data = DataDir(Path(tmp) / "data")
        first = asyncio.run(initialise(data, roles=tuple(Role)))
        assert first is not None
        tokens = {role: issued.token for role, issued in first.tokens.items()}
        try:
            with _server(data.root, _free_port()) as url:
                _run(url, first.tenant, tokens)
        except (OSError, RuntimeError, TimeoutError) as e:
            typer.echo(f"demo failed: {type(e).__name__}: {e}", err=True)
            raise typer.Exit(1) from None
    typer.echo(f"demo finished in {time.monotonic() - started:.1f} s")


def _gateway(console: Any, url: str, tokens: dict[str, str]) -> None:
    from sealtrail.cli import demo_gateway

    if not demo_gateway.available():  # an install without the gateway extra or the examples
        return
    _section(console, "MCP gateway: real MCP calls through sealtrail gateway")
    with tempfile.TemporaryDirectory(prefix="sealtrail-demo-gateway-") as tmp:
        demo_gateway.run(console, url, tokens["gateway"], tokens["investigator"], Path(tmp), _free_port())


def _section(console: Any, title: str) -> None:
    console.rule(f"[bold]{title}")


def _run(url: str, tenant: str, tokens: dict[str, str]) -> None:
    from rich.console import Console

    from sealtrail.cli import demo_report as report
    from sealtrail.cli.audit import run_live
    from sealtrail.cli.demo_traffic import scenario

    console = Console(width=max(Console().width, 110))
    _section(console, f"Sealtrail embedded default on {url} (tenant {tenant})")
    s = scenario(datetime.now(UTC))
    console.print(f"  {len(s.events)} events from 3 agents on 3 MCP servers: "
                  + ", ".join(f"{n} {k}" for k, n in s.counts.items()))
    sent = asyncio.run(_send(url, tokens["gateway"], s.events))
    with report.client(url) as http:
        report.wait_for_entries(http, tokens["auditor"], tenant, sent)
        console.print(f"  {sent} events acknowledged, logged and covered by a signed checkpoint")
        time.sleep(1.0)  # the projector follows the log within a poll interval
        _section(console, "Investigation")
        report.investigation(console, http, tokens["investigator"], s)
        _section(console, "Analytics and drift")
        report.analytics(console, http, tokens["investigator"])
        report.drift(console, http, tokens["investigator"])
        _section(console, "Reveal with a purpose")
        access_id = report.reveal(console, http, tokens["investigator"], s)
        report.show_access_event(console, http, tokens["investigator"], access_id)
        _section(console, "Subject erasure (GDPR Art. 17)")
        report.erase(console, http, tokens["dpo"], s)
    _gateway(console, url, tokens)
    _section(console, f"Full verification: sealtrail verify --url {url} --log {tenant}")
    time.sleep(1.0)  # let the checkpointer cover the access and erasure events
    run_live(url=url, log=tenant, token=tokens["auditor"], pins=[])
