"""What tool pinning costs the gateway, in process, on a SQLite state file:

- ``check_us``: the gate's per-call work once a server is pinned (two cached pin reads, the
  ``on_change`` policy, the refusal rule), with the cache's store read every 2 s amortised;
- ``hash_us``: hashing one tool definition (RFC 8785 JSON + SHA-256), as each fresh listing does;
- ``sync_ms``: pinning a fresh listing of ``--tools`` tools that did not change (one transaction).

    .venv/bin/python -m bench.bench_pinning --tools 50 --out bench/results/gateway_pinning.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.machine import describe
from services.gateway import pinning
from services.gateway.discovery import Discovery
from services.gateway.pinning import Listed
from services.gateway.sqlite import SqliteGatewayStore


def _tool(i: int) -> dict[str, Any]:
    return {"name": f"tool_{i}", "title": f"Tool {i}", "description": "Look a customer up by e-mail. " * 4,
            "inputSchema": {"type": "object", "properties": {"email": {"type": "string", "format": "email"},
                                                             "fields": {"type": "array", "items": {"type": "string"}}},
                            "required": ["email"]},
            "annotations": {"readOnlyHint": True, "idempotentHint": True}, "_meta": {"vendor/x": i}}


async def _check(discovery: Discovery, tool: str) -> pinning.Refusal | None:
    pin = await discovery.pin("bench", tool)
    policy = pinning.on_change(None, "read")
    why = pinning.refusal(await discovery.pin("bench", tool), policy)
    return why if pin is not None else "unlisted_tool"


async def bench(tools: int, rounds: int, tmp: Path) -> dict[str, Any]:
    async def record(_: dict[str, Any]) -> None:
        return None

    store = SqliteGatewayStore(tmp / "state.db")
    try:
        discovery = Discovery(store, record)
        listing = [_tool(i) for i in range(tools)]
        await discovery.listed("bench", listing)
        started = time.perf_counter()
        for i in range(rounds):
            assert await _check(discovery, f"tool_{i % tools}") is None
        check_s = time.perf_counter() - started
        started = time.perf_counter()
        for _ in range(20):
            for t in listing:
                Listed.of(t)
        hash_s = (time.perf_counter() - started) / (20 * tools)
        syncs = []
        for _ in range(20):
            fresh = [dict(t) for t in listing]  # a new listing object: compared with the pins, not skipped
            started = time.perf_counter()
            assert await discovery.listed("bench", fresh) == []
            syncs.append(time.perf_counter() - started)
    finally:
        await store.close()
    return {"check_us": round(1e6 * check_s / rounds, 2), "check_wall_s": round(check_s, 3),
            "hash_us": round(1e6 * hash_s, 1), "sync_ms_p50": round(1000 * statistics.median(syncs), 2),
            "sync_ms_max": round(1000 * max(syncs), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tools", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=200_000)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # the registration's log lines are not what is measured
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-pinning-") as tmp:
        result = asyncio.run(bench(args.tools, args.rounds, Path(tmp)))
    report = {"benchmark": "gateway_pinning", "tools": args.tools, "rounds": args.rounds, **result,
              "load_avg_before": load, "load_avg_after": os.getloadavg(), "machine": describe("mcp", "rfc8785")}
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
