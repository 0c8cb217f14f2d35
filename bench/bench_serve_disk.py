"""Disk use of ``sealtrail serve`` under steady load: the database grows, the rest stays flat.

Usage: ``python bench/bench_serve_disk.py [--seconds S] [--rate R] [--connections C]``.

Starts ``sealtrail serve`` on a fresh data directory with its defaults (local log trimmed every
30 s once sequenced, 8 MiB segments, WAL truncated past 16 MiB) and posts events of ~1 KiB of
payload, 20 to a request, at R events/s for S seconds, then idles 40 s (one trimming pass after
the last commit). Every 5 s it samples the bytes on disk of the database file, its WAL and the
local log. Writes ``bench/results/serve_disk.json`` with the machine, the samples and a summary
(first, last and max MiB per file; slope over each half of the loaded run).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import orjson

from bench.bench_ingest import PACKAGES
from bench.machine import describe
from sealtrail.cli.benchload import Connection
from tests.support.serve import Served, serve_event, start_serve

RESULTS = Path(__file__).resolve().parent / "results"
SAMPLE_S = 5.0
BATCH = 20
IDLE_S = 40.0


def _du(path: Path) -> int:
    if path.is_dir():
        return sum(_du(p) for p in path.iterdir())
    with contextlib.suppress(FileNotFoundError):
        return path.lstat().st_blocks * 512
    return 0


def _sizes(data: Path) -> dict[str, float]:
    db = data / "sealtrail.db"
    parts = {"database": db, "wal": db.with_name(db.name + "-wal"), "local log": data / "log"}
    return {name: _du(p) / 2**20 for name, p in parts.items()}


async def _load(served: Served, rate: float, connections: int, stop: asyncio.Event, acked: list[int]) -> None:
    per_conn = rate / connections / BATCH  # requests per second per connection

    async def worker(n: int) -> None:
        conn = Connection("127.0.0.1", served.port, served.tokens["gateway"])
        i, next_at = 0, time.monotonic()
        try:
            while not stop.is_set():
                batch = [serve_event(i + k, agent=f"agent-{n}") for k in range(BATCH)]
                for e in batch:
                    e["payload"]["arguments"]["pad"] = os.urandom(384).hex()  # ~1 KiB, not compressible
                status, _, _ = await conn.post(orjson.dumps({"events": batch}))
                acked[0] += BATCH if status == 202 else 0
                i += BATCH
                next_at += 1 / per_conn
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        finally:
            await conn.close()

    await asyncio.gather(*(worker(n) for n in range(connections)))


def _slope(t: list[float], y: list[float]) -> float:
    return statistics.linear_regression(t, y).slope * 60 if len(t) >= 2 else 0.0


async def run(args: argparse.Namespace, data: Path) -> dict[str, Any]:
    load_before = os.getloadavg()
    served = start_serve(data)
    samples: list[dict[str, float]] = []
    acked = [0]
    try:
        stop = asyncio.Event()
        load = asyncio.create_task(_load(served, args.rate, args.connections, stop, acked))
        started = time.monotonic()
        while (elapsed := time.monotonic() - started) < args.seconds + IDLE_S:
            if elapsed >= args.seconds:
                stop.set()
            samples.append({"t": round(elapsed, 1), "acked": acked[0], **_sizes(data)})
            await asyncio.sleep(SAMPLE_S)
        stop.set()
        await load
    finally:
        served.stop()
    loaded = [s for s in samples if s["t"] <= args.seconds]
    half = len(loaded) // 2
    summary = {}
    for name in ("database", "wal", "local log"):
        ys = [s[name] for s in loaded]
        ts = [s["t"] for s in loaded]
        summary[name] = {"first_mib": round(ys[0], 1), "last_loaded_mib": round(ys[-1], 1),
                         "max_mib": round(max(ys), 1), "after_idle_mib": round(samples[-1][name], 1),
                         "mib_per_min_first_half": round(_slope(ts[:half + 1], ys[:half + 1]), 1),
                         "mib_per_min_second_half": round(_slope(ts[half:], ys[half:]), 1)}
    return {"benchmark": "serve_disk", "machine": describe(*PACKAGES), "seconds": args.seconds,
            "rate": args.rate, "connections": args.connections, "events_acknowledged": acked[0],
            "load_average_before": load_before,
            "summary": summary, "samples": samples}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=240.0)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--connections", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sealtrail-serve-disk-") as tmp:
        result = asyncio.run(run(args, Path(tmp) / "data"))
    result["load_average_after"] = os.getloadavg()
    print(json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=2))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "serve_disk.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
