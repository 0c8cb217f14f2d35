"""The gateway's cost, side by side: the same ``mcp`` client calls the same trivial upstream tool
(``add`` of examples/mcp_server.py over Streamable HTTP) directly and through ``sealtrail gateway``
(Streamable HTTP, recording on, ``sealtrail serve`` as the ledger).

Two runs per path: sequential calls on one session (latency: p50/p99 and what the gateway adds), and
``--concurrency`` sessions calling at once (throughput). CPU seconds of each process are read from
/proc before and after, so the report gives CPU per call of the client, the upstream, the gateway
and the ledger. The gateway spools each event on disk (fsync'd) before it answers, as configured
for production; ``--no-spool`` runs it with events in memory, to show what that fsync costs.

    .venv/bin/python -m bench.bench_gateway --calls 2000 --concurrency 8 --out bench/results/gateway.json
    .venv/bin/python -m bench.bench_gateway --no-spool --out bench/results/gateway-no-spool.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import httpx
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from bench.ingest_load import live_cpu_s
from bench.machine import describe
from tests.support.gateway import EXAMPLE_SERVER, write_setup
from tests.support.serve import free_port, start_serve

EXTRA_SERVER = """
[servers.bench]
url = "http://127.0.0.1:{port}/mcp"
tier_default = "read"
[servers.bench.tools.add]
"""


def _client(url: str, token: str | None) -> Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return Client(streamable_http_client(url, http_client=create_mcp_http_client(headers=headers)), mode="legacy",
                  cache=None)


async def _session_calls(url: str, token: str | None, tool: str, n: int, lat: list[float]) -> None:
    async with _client(url, token) as c:
        await c.call_tool(tool, {"a": 1, "b": 2})  # warm the session
        for i in range(n):
            t = time.perf_counter()
            result = await c.call_tool(tool, {"a": i, "b": 1})
            lat.append(time.perf_counter() - t)
            if result.is_error:
                raise SystemExit(f"{tool} failed: {result}")


async def _run(url: str, token: str | None, tool: str, calls: int, sessions: int) -> dict[str, Any]:
    lat: list[float] = []
    per = max(1, calls // sessions)
    started = time.perf_counter()
    await asyncio.gather(*(_session_calls(url, token, tool, per, lat) for _ in range(sessions)))
    wall = time.perf_counter() - started
    lat.sort()
    return {"sessions": sessions, "calls": len(lat), "wall_s": round(wall, 3),
            "calls_per_s": round(len(lat) / wall, 1),
            "p50_ms": round(1000 * statistics.median(lat), 3),
            "p99_ms": round(1000 * lat[min(len(lat) - 1, int(len(lat) * 0.99))], 3)}


def _self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def _measured(run: Awaitable[dict[str, Any]], pids: dict[str, int]) -> dict[str, Any]:
    before = {name: live_cpu_s(pid) for name, pid in pids.items()}
    client_before = _self_cpu()
    result = await run
    calls = result["calls"]
    cpu = {name: live_cpu_s(pid) - before[name] for name, pid in pids.items()}
    cpu["client"] = _self_cpu() - client_before
    result["cpu_us_per_call"] = {name: round(1e6 * s / calls, 1) for name, s in cpu.items()}
    return result


def _start_upstream(port: int) -> subprocess.Popen[bytes]:
    """The example server over Streamable HTTP, answering with JSON bodies (connections are reused)."""
    return subprocess.Popen([sys.executable, str(EXAMPLE_SERVER), "--http", str(port), "--json"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _wait_port(port: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listens on port {port}")


async def bench(calls: int, concurrency: int, work: Path, *, spool: bool = True) -> dict[str, Any]:
    up_port = free_port()
    upstream = _start_upstream(up_port)
    served = start_serve(work / "data")
    setup = write_setup(work / "gw", served, extra=EXTRA_SERVER.format(port=up_port))
    try:
        _wait_port(up_port)
        text = setup.config.read_text().replace('allow = ["demo/*"]', 'allow = ["demo/*", "bench/*"]', 1)
        if not spool:  # events wait in memory: what the on-disk spool's fsync before each answer costs
            text = text.replace('spool_dir = "spool"\n', "", 1)
        setup.config.write_text(text)
        token = setup.key("alice")
        gw = setup.start()
        direct_url, gw_url = f"http://127.0.0.1:{up_port}/mcp", gw.url + "/mcp"
        pids = {"upstream": upstream.pid, "gateway": gw.proc.pid, "ledger": served.proc.pid}
        out: dict[str, Any] = {}
        for name, url, tok, tool in (("direct", direct_url, None, "add"), ("gateway", gw_url, token, "bench__add")):
            out[name] = {"sequential": await _measured(_run(url, tok, tool, calls, 1), pids),
                         "concurrent": await _measured(_run(url, tok, tool, calls, concurrency), pids)}
        d, g = out["direct"], out["gateway"]
        out["added_latency_ms"] = {"p50": round(g["sequential"]["p50_ms"] - d["sequential"]["p50_ms"], 3),
                                   "p99": round(g["sequential"]["p99_ms"] - d["sequential"]["p99_ms"], 3)}
        out["throughput_ratio"] = round(g["concurrent"]["calls_per_s"] / d["concurrent"]["calls_per_s"], 3)
        out["lean_calls"] = _lean_calls(gw.url)
        out["recorded_events"] = _recorded(served.data_dir)
        return out
    finally:
        setup.stop_all()
        served.stop()
        upstream.terminate()
        upstream.wait(timeout=10)


def _lean_calls(url: str) -> dict[str, float]:
    """How many calls the gateway's lean paths carried (agent side, upstream side)."""
    text = httpx.get(url + "/metrics", timeout=10).text
    return {m[0]: float(m[1]) for m in re.findall(r'sealtrail_gateway_lean_calls\{side="(\w+)"\} (\S+)', text)}


def _recorded(data_dir: Path) -> int:
    import sqlite3

    time.sleep(2)
    conn = sqlite3.connect(f"file:{data_dir / 'sealtrail.db'}?mode=ro", uri=True)
    try:
        n: int = conn.execute("SELECT count(*) FROM entries WHERE type = 'tool_call'").fetchone()[0]
        return n
    finally:
        conn.close()


def _fsync_ms(n: int = 200) -> dict[str, float]:
    """What one fsync of a small append costs on this disk now (the spool pays one per group of answers)."""
    with tempfile.NamedTemporaryFile(dir=Path.cwd()) as f:
        times = []
        for _ in range(n):
            started = time.perf_counter()
            f.write(b"x" * 300)
            f.flush()
            os.fsync(f.fileno())
            times.append(time.perf_counter() - started)
    times.sort()
    return {"p50": round(1000 * times[n // 2], 3), "p99": round(1000 * times[int(n * 0.99)], 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--no-spool", action="store_true",
                        help="run the gateway without spool_dir (events in memory, no fsync before answers)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as tmp:
        result = asyncio.run(bench(args.calls, args.concurrency, Path(tmp), spool=not args.no_spool))
    report = {"benchmark": "gateway", "calls": args.calls, "concurrency": args.concurrency,
              "spool": not args.no_spool, "fsync_ms": _fsync_ms(), "load_avg_after": os.getloadavg(),
              "machine": describe("mcp", "uvicorn", "starlette", "httpx"), "load_avg_before": load,
              **result}
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
