"""Embedded end-to-end benchmark: ``sealtrail serve`` from 202 to a signed checkpoint, one process.

Usage: ``python bench/bench_embedded.py [--seconds S] [--concurrency C] [--profile FILE.svg]``

Starts ``sealtrail serve`` (ingest, local log, ledger, SQLite, checkpointer, projector and query in
one process) on a fresh data directory, then C connections send batches of 500 events of ~1 KiB
back to back for S seconds (20 by default), while this driver watches the SQLite checkpoints table
every 50 ms (read-only). Reports the sustained rate of events accepted (202: fsync'd in the local
log) and of events in a signed checkpoint until everything sent is signed, and the latency from each
event's 202 to the first signed checkpoint that includes it. ``--profile`` records the server with
py-spy. Writes bench/results/embedded.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


from bench.bench_e2e import send
from bench.machine import describe, rss_mib
from tests.support.serve import Served, start_serve

RESULTS = Path(__file__).resolve().parent / "results" / "embedded.json"
PACKAGES = ("fastapi", "uvicorn", "uvloop", "httptools", "pydantic", "orjson", "pynacl", "blake3", "httpx",
            "rfc8785")
BATCH = 500


def signed_size(db: Path) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT coalesce(max(tree_size), 0) FROM checkpoints").fetchone()[0])
    finally:
        conn.close()


async def watch_checkpoints(db: Path, stop_at: asyncio.Event, seen: list[tuple[float, int]]) -> None:
    """Record (time observed, signed tree size) whenever the signed size grows."""
    last = 0
    while not stop_at.is_set():
        size = await asyncio.to_thread(signed_size, db)
        if size > last:
            seen.append((time.perf_counter(), size))
            last = size
        await asyncio.sleep(0.05)


def latencies(db: Path, accepted: list[tuple[float, list[str]]], seen: list[tuple[float, int]]) -> list[float]:
    """Seconds from each event's 202 to the first observed checkpoint covering its index."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        index = dict(conn.execute("SELECT event_id, idx FROM entries"))
    finally:
        conn.close()
    out = []
    for t_accepted, ids in accepted:
        for event_id in ids:
            idx = index[event_id]
            t_signed = next(t for t, size in seen if size > idx)
            out.append(max(0.0, t_signed - t_accepted))
    return out


async def run(args: argparse.Namespace, served: Served) -> dict[str, Any]:
    db = served.data_dir / "sealtrail.db"
    accepted: list[tuple[float, list[str]]] = []
    seen: list[tuple[float, int]] = []
    done = asyncio.Event()
    watcher = asyncio.create_task(watch_checkpoints(db, done, seen))
    try:
        started = time.perf_counter()
        statuses = await send(served.url, served.tokens["gateway"], args.seconds, args.concurrency, BATCH,
                              accepted)
        sent_s = time.perf_counter() - started
        total = sum(len(ids) for _, ids in accepted)
        while not seen or seen[-1][1] < total:
            if time.perf_counter() - sent_s - started > 300:
                raise TimeoutError(f"{total} accepted events were not all signed within 300 s")
            await asyncio.sleep(0.05)
        drained_s = time.perf_counter() - started
        rss = rss_mib(served.proc.pid)
    finally:
        done.set()
        await watcher
    lat = sorted(latencies(db, accepted, seen))
    return {
        "seconds_sending": round(sent_s, 1), "accepted_events": total,
        "accepted_per_s": round(total / sent_s), "signed_per_s_until_drained": round(total / drained_s),
        "drain_after_sending_s": round(drained_s - sent_s, 2),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "ack_to_checkpoint_s": {"p50": round(statistics.median(lat), 3),
                                "p99": round(lat[int(0.99 * (len(lat) - 1))], 3), "max": round(lat[-1], 3)},
        "serve_rss_mib_end": round(rss, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--profile", type=Path, default=None,
                        help="py-spy profile of the server: .svg flame graph, .txt collapsed stacks")
    parser.add_argument("--no-results", action="store_true", help="print only; leave bench/results alone")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="sealtrail-bench-embedded-") as tmp:
        served = start_serve(Path(tmp) / "data")
        spy = None
        if args.profile is not None:
            fmt = "raw" if args.profile.suffix == ".txt" else "flamegraph"  # raw: collapsed stacks
            spy = subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "-o", str(args.profile),
                                    "-p", str(served.proc.pid), "-r", "100", "--threads", "-f", fmt])
        try:
            result = asyncio.run(run(args, served))
        finally:
            if spy is not None:
                spy.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
                spy.wait(timeout=60)
            served.stop()
    report = {"benchmark": "embedded", "machine": describe(*PACKAGES),
              "setup": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
              | {"batch_events": BATCH, "event_bytes": 1024, "sqlite_synchronous": "FULL",
                 "local_log": "fsync before 202", "load_average_1m_before": round(load_before, 2)},
              "result": result}
    print(json.dumps(report, indent=2))
    if not args.no_results:
        RESULTS.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
