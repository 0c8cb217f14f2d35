"""Soak: the whole pipeline at a steady fraction of its measured rate, for a long time.

Usage: ``python bench/soak.py [--seconds S] [--fraction F] [--warmup W]`` (S defaults to
``$SEALTRAIL_SOAK_SECONDS`` or 600).

Starts a private PostgreSQL and Kafka, ``sealtrail ingest``, two ``sealtrail ledger`` instances and
``sealtrail projector`` (tests/support/pipeline.py). A warm-up of W seconds sends through the SDK as
fast as it goes and measures the acknowledged rate; then the SDK sends at F (0.6) of that rate for S
seconds. Every few seconds it samples the acknowledged and signed rates, each service's RSS and the
disk use of PostgreSQL's tables (``base/``), its WAL (``pg_wal/``) and Kafka's log directory;
latency is from each event's 202 to the first signed checkpoint seen to cover it. At the end it
applies the chaos test's checks (every 202 in the log exactly once, logs verify, read models equal
a rebuild). Writes bench/results/soak.txt and bench/results/soak.png.

Disk: the tables grow with the events (they are the record); Kafka's log stays flat because the
ledgers delete the sealed topic's records below their committed offsets (services/ledger/trimming.py)
and the broker removes whole segments below the log start offset at its retention check (run every
:data:`KAFKA_RETENTION_CHECK_MS` here instead of the broker's default five minutes, so a run of a
few minutes shows it); pg_wal stays within ``max_wal_size``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_ingest import PACKAGES
from bench.machine import describe
from tests.support.pipeline import Pipeline, connect
from tests.support.pipeline_load import Load, Verdict, client_for, drain_client, generate, verdict, wait_logged

RESULTS = Path(__file__).resolve().parent / "results"
SAMPLE_S = 5.0
KAFKA_RETENTION_CHECK_MS = 30_000


@dataclass
class Samples:
    t: list[float] = field(default_factory=list)
    acked_per_s: list[float] = field(default_factory=list)
    signed_per_s: list[float] = field(default_factory=list)
    rss: dict[str, list[float]] = field(default_factory=dict)
    disk: dict[str, list[float]] = field(default_factory=dict)  # MiB on disk per directory
    signed_seen: list[tuple[float, int]] = field(default_factory=list)  # (monotonic, signed size)


async def watch_signed(db_url: str, stop: asyncio.Event, seen: list[tuple[float, int]]) -> None:
    """(time, signed size of the tenant's log) each time it grows; survives nothing, needs nothing."""
    conn = await connect(db_url)
    try:
        last = 0
        while not stop.is_set():
            size = await conn.fetchval("SELECT coalesce(max(tree_size), 0) FROM checkpoints") or 0
            if size > last:
                seen.append((time.monotonic(), int(size)))
                last = size
            await asyncio.sleep(0.05)
    finally:
        await conn.close()


def du_mib(path: Path) -> float:
    """MiB allocated on disk to the files under ``path`` (files vanishing meanwhile are skipped)."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(FileNotFoundError):
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
    return total / 2**20


def disk_dirs(pipe: Pipeline) -> dict[str, Path]:
    pgdata = pipe.pg.datadir / "pgdata"
    return {"pg tables": pgdata / "base", "pg_wal": pgdata / "pg_wal", "kafka log": pipe.kafka.datadir / "data"}


async def sample(pipe: Pipeline, load: Load, s: Samples, started: float, stop: asyncio.Event) -> None:
    prev_signed = s.signed_seen[-1][1] if s.signed_seen else 0
    prev_acked, prev_t = len(load.accepted_ids), time.monotonic()
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=SAMPLE_S)
        if stop.is_set():  # a partial window at the end would read as a drop
            return
        now = time.monotonic()
        acked = len(load.accepted_ids)
        signed = s.signed_seen[-1][1] if s.signed_seen else 0
        s.t.append(now - started)
        s.acked_per_s.append((acked - prev_acked) / (now - prev_t))
        s.signed_per_s.append((signed - prev_signed) / (now - prev_t))
        for name, svc in pipe.services.items():
            s.rss.setdefault(name, []).append(svc.rss_mib())
        for name, path in disk_dirs(pipe).items():
            s.disk.setdefault(name, []).append(await asyncio.to_thread(du_mib, path))
        prev_acked, prev_signed, prev_t = acked, signed, now


async def latencies(db_url: str, load: Load, seen: list[tuple[float, int]], after: float) -> list[float]:
    conn = await connect(db_url)
    try:
        index = {r["e"]: r["idx"] for r in await conn.fetch("SELECT event_id::text AS e, idx FROM entries")}
    finally:
        await conn.close()
    out = []
    for t_acked, ids in load.accepted:
        if t_acked < after:
            continue
        for event_id in ids:
            idx = index[event_id]
            t_signed = next((t for t, size in seen if size > idx), None)
            if t_signed is not None:
                out.append(max(0.0, t_signed - t_acked))
    return sorted(out)


async def run(args: argparse.Namespace, work: Path) -> tuple[dict[str, float], Samples, Verdict]:
    pipe = Pipeline(work / "stack")
    pipe.kafka.settings["log.retention.check.interval.ms"] = str(KAFKA_RETENTION_CHECK_MS)
    load = Load()
    s = Samples()
    halt = asyncio.Event()
    try:
        await pipe.start()
        watcher = asyncio.create_task(watch_signed(pipe.pg.url, halt, s.signed_seen))
        client = client_for(pipe, load, work / "spool")
        client.start()
        warm_stop = asyncio.Event()
        warm = asyncio.create_task(generate(client, load, 20_000, warm_stop))
        await asyncio.sleep(args.warmup / 3)  # the first third warms caches and JITs
        t0, n0 = time.monotonic(), len(load.accepted_ids)
        await asyncio.sleep(args.warmup * 2 / 3)
        measured = (len(load.accepted_ids) - n0) / (time.monotonic() - t0)
        warm_stop.set()
        await warm
        await client.flush()
        rate = measured * args.fraction
        started = time.monotonic()
        stop = asyncio.Event()
        sampler = asyncio.create_task(sample(pipe, load, s, started, stop))
        sending = asyncio.create_task(generate(client, load, rate, stop))
        await asyncio.sleep(args.seconds)
        stop.set()
        await sending
        await sampler
        await drain_client(client, load)
        await wait_logged(pipe.pg.url, len(set(load.accepted_ids)), within_s=300)
        await asyncio.sleep(1)
        halt.set()
        await watcher
        lat = await latencies(pipe.pg.url, load, s.signed_seen, started)
        steady = [e for t, ids in load.accepted if t >= started for e in ids]
        result = await verdict(pipe, load)
    finally:
        halt.set()
        pipe.close()
    figures = {
        "warmup_rate": measured, "target_rate": rate, "steady_acked": len(steady),
        "steady_acked_per_s": len(steady) / args.seconds,
        "p50": statistics.median(lat) if lat else float("nan"),
        "p99": lat[int(0.99 * (len(lat) - 1))] if lat else float("nan"), "max": lat[-1] if lat else float("nan"),
    }
    return figures, s, result


def report(args: argparse.Namespace, figures: dict[str, float], s: Samples, result: Verdict) -> str:
    machine = describe(*PACKAGES)
    lines = [
        f"Sealtrail soak: {args.seconds:.0f} s at {args.fraction:.0%} of the rate measured in a {args.warmup:.0f} s"
        " warm-up (SDK with spool -> ingest -> Kafka -> 2 ledgers -> PostgreSQL -> projector).",
        "Machine: " + ", ".join(f"{k}={v}" for k, v in machine.items()),
        "",
        f"warm-up acknowledged rate   {figures['warmup_rate']:.0f} events/s",
        f"target rate                 {figures['target_rate']:.0f} events/s",
        f"acknowledged while steady   {figures['steady_acked']:.0f} events "
        f"({figures['steady_acked_per_s']:.0f} events/s)",
        f"202 -> signed checkpoint    p50 {figures['p50']:.3f} s, p99 {figures['p99']:.3f} s, "
        f"max {figures['max']:.3f} s",
    ]
    if s.t:
        lines.append(f"acked/s per {SAMPLE_S:.0f} s sample   min {min(s.acked_per_s):.0f}, "
                     f"max {max(s.acked_per_s):.0f}; signed/s min {min(s.signed_per_s):.0f}, "
                     f"max {max(s.signed_per_s):.0f}")
        for name, rss in s.rss.items():
            live = [r for r in rss if r > 0] or [0.0]
            lines.append(f"RSS {name:<10} first {live[0]:.0f} MiB, last {live[-1]:.0f} MiB, max {max(live):.0f} MiB")
        lines += disk_lines(s, figures["steady_acked"])
    lines += ["", f"end checks: {'PASS' if result.ok() else 'FAIL'} {result}"]
    return "\n".join(lines) + "\n"


def disk_lines(s: Samples, events: float) -> list[str]:
    """Per directory: first, last and max MiB, and the slope over each half of the run."""
    out = []
    half = len(s.t) // 2
    for name, mib in s.disk.items():
        slopes = [_slope(s.t[a:b], mib[a:b]) for a, b in ((0, half + 1), (half, len(mib)))]
        line = (f"disk {name:<10} first {mib[0]:.0f} MiB, last {mib[-1]:.0f} MiB, max {max(mib):.0f} MiB;"
                f" MiB/min first half {slopes[0]:+.1f}, second half {slopes[1]:+.1f}")
        if name == "pg tables" and events:
            line += f"; {(mib[-1] - mib[0]) * 2**20 / events:.0f} bytes per event acknowledged while steady"
        out.append(line)
    return out


def _slope(t: list[float], y: list[float]) -> float:
    """Least-squares slope of y over t, per minute (0 with fewer than two samples)."""
    if len(t) < 2:
        return 0.0
    return statistics.linear_regression(t, y).slope * 60


def plot(s: Samples, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom, disk) = plt.subplots(3, 1, figsize=(9, 8), sharex=True)
    top.plot(s.t, s.acked_per_s, label="acknowledged (202) events/s")
    top.plot(s.t, s.signed_per_s, label="signed events/s")
    top.set_ylabel("events/s")
    top.legend()
    for name, rss in s.rss.items():
        bottom.plot(s.t, rss, label=name)
    bottom.set_ylabel("RSS MiB")
    bottom.set_ylim(bottom=0)
    bottom.legend()
    for name, mib in s.disk.items():
        disk.plot(s.t, mib, label=name)
    disk.set_ylabel("disk MiB")
    disk.set_ylim(bottom=0)
    disk.set_xlabel("seconds")
    disk.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("SEALTRAIL_SOAK_SECONDS", "600")))
    parser.add_argument("--fraction", type=float, default=0.6)
    parser.add_argument("--warmup", type=float, default=30.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sealtrail-soak-") as tmp:
        figures, s, result = asyncio.run(run(args, Path(tmp)))
    text = report(args, figures, s, result)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "soak.txt").write_text(text)
    plot(s, RESULTS / "soak.png")
    if not result.ok():
        raise SystemExit(1)


if __name__ == "__main__":
    main()
