"""Embedded end-to-end benchmark: ``sealtrail serve`` from 202 to a signed checkpoint, one process.

Usage: ``python bench/bench_embedded.py [--seconds S] [--concurrency C] [--profile FILE.svg]``

Starts ``sealtrail serve`` (ingest, local log, ledger, SQLite, checkpointer, projector and query in
one process) on a fresh data directory, then C connections send batches of 500 events of ~1 KiB
back to back for S seconds (20 by default), sleeping Retry-After on a 429, while this driver
watches the SQLite log size and checkpoints every 50 ms (read-only) and the server's backlog gauge
(``/metrics``) every 250 ms. Reports, over the sending window: events accepted (202: fsync'd in the
local log) and sequenced (committed by the ledger) per second, the 429 count, the largest backlog
seen; then the signed rate until everything sent is in a checkpoint, the latency from each event's
202 to the first signed checkpoint that includes it (p50, p99, max), and the server's CPU seconds.

Exits 1 when the backlog at the end of sending is over what backpressure allows (the bound plus
one batch per connection, admitted together just under it) or does not drain. Figures move with
whatever else runs on the machine; compare runs, not single numbers. ``--profile`` records the
server with py-spy. Writes bench/results/embedded.json.
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

import httpx

from bench.ingest_load import live_cpu_s
from bench.machine import describe, rss_mib
from sealtrail.cli.bench import receipt_verifiers
from sealtrail.cli.benchload import AnswerCheck, Load, send
from tests.support.serve import Served, start_serve

RESULTS = Path(__file__).resolve().parent / "results" / "embedded.json"
PACKAGES = ("fastapi", "uvicorn", "uvloop", "httptools", "pydantic", "orjson", "pynacl", "blake3", "httpx",
            "rfc8785")
BATCH = 500


def sizes(db: Path) -> tuple[int, int]:
    """(entries sequenced, entries in a signed checkpoint), summed over logs."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        sequenced = conn.execute("SELECT coalesce(sum(size), 0) FROM logs").fetchone()[0]
        signed = conn.execute("SELECT coalesce(max(tree_size), 0) FROM checkpoints").fetchone()[0]
        return int(sequenced), int(signed)
    finally:
        conn.close()


async def watch_log(db: Path, stop_at: asyncio.Event, seen: list[tuple[float, int]],
                    sequenced: list[tuple[float, int]]) -> None:
    """Record (time observed, size) whenever the signed size, or the sequenced size, grows."""
    last = 0
    while not stop_at.is_set():
        size, signed = await asyncio.to_thread(sizes, db)
        now = time.perf_counter()
        sequenced.append((now, size))
        if signed > last:
            seen.append((now, signed))
            last = signed
        await asyncio.sleep(0.05)


def gauge(text: str, name: str) -> float:
    line = next((x for x in text.splitlines() if x.startswith(name + " ")), None)
    return float(line.split()[1]) if line else float("nan")


async def watch_backlog(url: str, stop_at: asyncio.Event, samples: list[float]) -> None:
    """Sample the server's ``sealtrail_embedded_ledger_backlog`` gauge."""
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        while not stop_at.is_set():
            samples.append(gauge((await client.get("/metrics")).text, "sealtrail_embedded_ledger_backlog"))
            await asyncio.sleep(0.25)


def sequenced_at(sequenced: list[tuple[float, int]], t: float) -> int:
    return max((n for at, n in sequenced if at <= t), default=0)


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
    sequenced: list[tuple[float, int]] = []
    backlogs: list[float] = []
    done, sending = asyncio.Event(), asyncio.Event()
    async with httpx.AsyncClient(base_url=served.url, timeout=10) as client:
        metrics = (await client.get("/metrics")).text
    bound = int(gauge(metrics, "sealtrail_embedded_ledger_backlog_bound"))
    watchers = [asyncio.create_task(watch_log(db, done, seen, sequenced)),
                asyncio.create_task(watch_backlog(served.url, sending, backlogs))]
    cpu_before = live_cpu_s(served.proc.pid)
    try:
        started = time.perf_counter()
        load = Load(served.url, served.tokens["gateway"], args.seconds, args.concurrency, BATCH)
        sent = await send(load, AnswerCheck(await receipt_verifiers(served.url), 50))
        sent_s, statuses, accepted = time.perf_counter() - started, sent.statuses, sent.accepted
        sending.set()
        async with httpx.AsyncClient(base_url=served.url, timeout=10) as client:
            backlog_end = gauge((await client.get("/metrics")).text, "sealtrail_embedded_ledger_backlog")
        total = sum(len(ids) for _, ids in accepted)
        while not seen or seen[-1][1] < total:
            if time.perf_counter() - sent_s - started > 300:
                raise TimeoutError(f"{total} accepted events were not all signed within 300 s")
            await asyncio.sleep(0.05)
        drained_s = time.perf_counter() - started
        cpu = live_cpu_s(served.proc.pid) - cpu_before
        rss = rss_mib(served.proc.pid)
    finally:
        sending.set()
        done.set()
        await asyncio.gather(*watchers)
    lat = sorted(latencies(db, accepted, seen))
    return {
        "seconds_sending": round(sent_s, 1), "accepted_events": total,
        "accepted_per_s": round(total / sent_s),
        "sequenced_per_s_while_sending": round(sequenced_at(sequenced, started + sent_s) / sent_s),
        "signed_per_s_until_drained": round(total / drained_s),
        "drain_after_sending_s": round(drained_s - sent_s, 2),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "throttled_429": statuses.get(429, 0),
        "backlog": {"bound": bound, "max_seen": int(max(backlogs, default=0)), "at_end_of_sending": int(backlog_end),
                    "allowed_at_end": bound + args.concurrency * BATCH},
        "ack_to_checkpoint_s": {"p50": round(statistics.median(lat), 3),
                                "p99": round(lat[int(0.99 * (len(lat) - 1))], 3), "max": round(lat[-1], 3)},
        "serve_cpu_s": round(cpu, 1), "serve_cpu_us_per_event": round(1e6 * cpu / total),
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
              | {"batch_events": BATCH, "event_bytes": 1024,
                 "sqlite_synchronous": "NORMAL for ledger and projector commits, FULL for the rest",
                 "local_log": "fsync before 202", "load_average_1m_before": round(load_before, 2)},
              "result": result}
    print(json.dumps(report, indent=2))
    if not args.no_results:
        RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    backlog = result["backlog"]
    if backlog["at_end_of_sending"] > backlog["allowed_at_end"]:
        print(f"FAIL: the backlog at the end of sending ({backlog['at_end_of_sending']}) is over "
              f"{backlog['allowed_at_end']} (bound {backlog['bound']} + one batch per connection)", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
