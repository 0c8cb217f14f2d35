"""The cost of one gateway health check: ``HealthMonitor.check`` (a new connection with the stored
credential, initialize, tools/list, the state database update, the event built) against

- a Streamable HTTP upstream that requires a bearer token (tests/support/authserver.py), the token
  stored sealed in a SQLite state database and opened for each check, and
- the stdio example server (examples/mcp_server.py), which each check starts and stops when the
  gateway has no connection open to it, and which is checked on the open connection otherwise.

The latency a check records (connect, initialize, tools/list), the wall time of the whole check
with closing the connection and the state update (p50/p95/max), and CPU per check: the checking
process (user + system), the running upstream process (HTTP, or the stdio server already running),
and the stdio servers the checks started (their CPU is the children's). Events go to a list, not to
a ledger (an event costs the ledger what any event costs it).

    .venv/bin/python -m bench.bench_gateway_health --checks 100 --out bench/results/gateway_health.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.ingest_load import live_cpu_s
from bench.machine import describe
from sealtrail.core.sealing import Kek
from services.gateway import credentials
from services.gateway.config import GatewayConfig, LedgerConfig, ServerConfig
from services.gateway.health import HealthMonitor
from services.gateway.sqlite import SqliteGatewayStore
from services.gateway.upstream import Upstream
from tests.support.authserver import AuthServer
from tests.support.gateway import EXAMPLE_SERVER
from tests.support.serve import free_port

TOKEN = "tok-bench-0123456789"


def _children() -> set[int]:
    found: set[int] = set()
    for task in Path("/proc/self/task").iterdir():
        found.update(int(p) for p in (task / "children").read_text().split())
    return found


def _cpu(who: int) -> float:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


async def _run(monitor: HealthMonitor, server: str, n: int, upstream_pid: int | None) -> dict[str, Any]:
    await monitor.check(server)  # warm: imports, first connection
    walls: list[float] = []
    measured: list[int] = []
    self0, kids0 = _cpu(resource.RUSAGE_SELF), _cpu(resource.RUSAGE_CHILDREN)
    up0 = live_cpu_s(upstream_pid) if upstream_pid else 0.0
    for _ in range(n):
        t = time.perf_counter()
        report = await monitor.check(server)
        walls.append((time.perf_counter() - t) * 1000)
        measured.append(report.latency_ms)
        if report.status != "ok":
            raise SystemExit(f"check of {server} failed: {report.status} {report.message}")
    walls.sort()
    up = (live_cpu_s(upstream_pid) - up0) if upstream_pid else None
    return {
        "checks": n, "recorded_latency_ms_p50": statistics.median(measured),
        "wall_ms_p50": round(statistics.median(walls), 2),
        "wall_ms_p95": round(walls[int(0.95 * (n - 1))], 2), "wall_ms_max": round(walls[-1], 2),
        "cpu_ms_per_check_gateway": round((_cpu(resource.RUSAGE_SELF) - self0) / n * 1000, 2),
        "cpu_ms_per_check_started_stdio_servers": round((_cpu(resource.RUSAGE_CHILDREN) - kids0) / n * 1000, 2),
        "cpu_ms_per_check_running_upstream": None if up is None else round(up / n * 1000, 2),
    }


async def _live(cfg: GatewayConfig, store: SqliteGatewayStore, record: Any, stdio: ServerConfig,
                checks: int) -> dict[str, Any]:
    """The stdio server already running behind the gateway: the check lists its tools on that connection."""
    live = Upstream(stdio)
    try:
        before = _children()
        await live.tools()
        started = _children() - before
        if len(started) != 1:
            raise SystemExit(f"expected one new stdio server process, found {sorted(started)}")
        monitor = HealthMonitor(cfg, store, record, upstreams={"demo": live})
        return await _run(monitor, "demo", checks, started.pop())
    finally:
        await live.close()


async def main(checks: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-health-") as tmp:
        base = Path(tmp)
        upstream = AuthServer(base / "up", free_port())
        upstream.dir.mkdir(parents=True)
        upstream.set_token(TOKEN)
        upstream.start()
        try:
            http = ServerConfig(name="docs", url=upstream.url)
            stdio = ServerConfig(name="demo", command=(sys.executable, str(EXAMPLE_SERVER)))
            cfg = GatewayConfig(path=base / "gateway.toml", policy_id="bench",
                                ledger=LedgerConfig("http://127.0.0.1:9", base / "t"),
                                state_database=str(base / "state.db"), servers={"docs": http, "demo": stdio})
            store, kek = SqliteGatewayStore(base / "state.db"), Kek.generate()
            events: list[dict[str, Any]] = []

            async def record(event: dict[str, Any]) -> None:
                events.append(event)

            await credentials.set_credential(store, kek, record, http, kind="bearer", name=None, secret=TOKEN,
                                             by="bench")
            monitor = HealthMonitor(cfg, store, record, kek=kek)
            assert upstream.proc is not None
            result = {
                "benchmark": "gateway health check (HealthMonitor.check)",
                "http_bearer": await _run(monitor, "docs", checks, upstream.proc.pid),
                "stdio_spawned": await _run(monitor, "demo", max(10, checks // 4), None),
                "stdio_running": await _live(cfg, store, record, stdio, checks),
                "events_recorded": len(events),
                "load_average_during": list(os.getloadavg()),
                "machine": describe("mcp", "httpx2", "uvicorn"),
            }
            await store.close()
        finally:
            upstream.stop()
    result["load_average_after"] = list(os.getloadavg())
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--checks", type=int, default=100)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    for chatty in ("httpx", "httpx2", "mcp"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    before = os.getloadavg()
    found = asyncio.run(main(args.checks))
    found["load_average_before"] = list(before)
    if args.out is not None:
        args.out.write_text(json.dumps(found, indent=2) + "\n")
    print(json.dumps(found, indent=2))
