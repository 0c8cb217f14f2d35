"""Ledger benchmark: catch-up throughput from Kafka into PostgreSQL, and RSS as the log grows.

Usage: ``python bench/bench_ledger.py [--entries N] [--payload BYTES]``

Starts durable PostgreSQL and Kafka (sealtrail.devstack), produces N sealed records of one tenant
with ~1 KiB ciphertext straight to the sealed topic, then runs ``sealtrail ledger`` as a separate
process and samples its progress, CPU time and RSS until every entry is in a signed checkpoint.
Reports entries/s, the ledger process's CPU microseconds per entry (the figure that matters on a
shared machine: wall-clock rates move with whatever else runs) and its RSS at 100,000 and 1,000,000
entries (tree state is O(log n), so RSS should stay flat). Writes bench/results/ledger.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg
from aiokafka import AIOKafkaProducer

from bench.ingest_load import live_cpu_s
from bench.machine import describe, rss_mib
from sealtrail.core.record import SealedRecord
from sealtrail.devstack import KafkaServer, PostgresServer
from sealtrail.devstack._proc import free_port
from tests.support.ledger import create_tenants, sealed, uuid7

RESULTS = Path(__file__).resolve().parent / "results" / "ledger.json"
TOPIC = "sealtrail.sealed"


async def produce(bootstrap: str, count: int, payload: int) -> float:
    """Produce ``count`` sealed records; return records/s."""
    await _ensure_topic(bootstrap)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True,
                                linger_ms=20, max_batch_size=1024 * 1024)
    await producer.start()
    started = time.perf_counter()
    try:
        template = sealed("bench", ciphertext_size=payload)
        for start in range(0, count, 10_000):
            futures = []
            for _ in range(min(10_000, count - start)):
                futures.append(await producer.send(TOPIC, _fresh(template), key=b"bench"))
            await asyncio.gather(*futures)
            print(f"\r  produced {start + len(futures):,}", end="", flush=True)
    finally:
        await producer.stop()
    print()
    return count / (time.perf_counter() - started)


def _fresh(template: SealedRecord) -> bytes:
    """The template record under a new event id."""
    return SealedRecord(template.log, {**template.header, "event_id": uuid7()}, template.nonce,
                        template.ciphertext).encode()


async def _ensure_topic(bootstrap: str) -> None:
    from sealtrail.infra.bus import TopicSpec
    from sealtrail.infra.kafka import ensure_topics

    await ensure_topics(bootstrap, [TopicSpec(TOPIC, 1)])


Sample = tuple[float, int, float, float]  # seconds since start, entries, RSS MiB, CPU seconds


async def sample(db_url: str, pid: int, total: int, interval: float) -> dict[str, Any]:
    """Poll the ledger's progress, CPU and RSS until a checkpoint covers every entry."""
    conn = await asyncpg.connect(db_url)
    samples: list[Sample] = []
    started = time.perf_counter()
    try:
        while True:
            size = await conn.fetchval("SELECT coalesce(max(size), 0) FROM logs") or 0
            signed = await conn.fetchval("SELECT coalesce(max(tree_size), 0) FROM checkpoints") or 0
            samples.append((time.perf_counter() - started, size, rss_mib(pid), live_cpu_s(pid)))
            if signed >= total:
                break
            await asyncio.sleep(interval)
    finally:
        await conn.close()
    return {"samples": samples, "seconds": time.perf_counter() - started}


def rss_at(samples: list[Sample], entries: int) -> float | None:
    for _, size, rss, _ in samples:
        if size >= entries:
            return rss
    return None


def cpu_per_entry(samples: list[Sample], total: int) -> tuple[float, float]:
    """CPU microseconds per entry and entries/s while appending: from the first sample that saw
    entries to the first that saw them all (start-up and the final checkpoint wait excluded)."""
    first = next(s for s in samples if s[1] > 0)
    last = next(s for s in samples if s[1] >= total)
    entries = last[1] - first[1]
    if entries <= 0:
        return float("nan"), float("nan")
    return (last[3] - first[3]) / entries * 1e6, entries / (last[0] - first[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--payload", type=int, default=1024)
    parser.add_argument("--profile", type=Path, help="record the ledger with py-spy (raw collapsed stacks)")
    parser.add_argument("--profile-seconds", type=int, default=10)
    parser.add_argument("--max-records", type=int, help="records per poll (sealtrail ledger --max-records)")
    parser.add_argument("--keep", action="store_true", help="keep the PostgreSQL and Kafka data directory")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write the JSON report")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between progress samples")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra environment for the ledger process (repeatable)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sealtrail-bench-"))
    pg = PostgresServer(datadir=work / "pg", durable=True)
    kafka = KafkaServer(datadir=work / "kafka", heap="1g")
    pg.start()
    kafka.start()
    ledger: subprocess.Popen[bytes] | None = None
    try:
        asyncio.run(create_tenants(pg.url, "bench"))
        print(f"producing {args.entries:,} sealed records of {args.payload} B ciphertext ...")
        produce_rate = asyncio.run(produce(kafka.bootstrap, args.entries, args.payload))
        env = {**os.environ, "SEALTRAIL_DATABASE_URL": pg.url, "SEALTRAIL_KAFKA_BOOTSTRAP": kafka.bootstrap,
               "SEALTRAIL_SIGNING_KEY_DIR": str(work / "keys"), "SEALTRAIL_LOG_LEVEL": "WARNING",
               "SEALTRAIL_TOPIC_PARTITIONS": "1", **dict(e.split("=", 1) for e in args.env)}
        cmd = [sys.executable, "-m", "sealtrail.cli.main", "ledger", "--port", str(free_port())]
        if args.max_records:
            cmd += ["--max-records", str(args.max_records)]
        ledger = subprocess.Popen(cmd, env=env)
        if args.profile:
            subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "--format", "raw",
                              "--pid", str(ledger.pid), "--duration", str(args.profile_seconds),
                              "-o", str(args.profile)])
        result = asyncio.run(sample(pg.url, ledger.pid, args.entries, args.interval))
    finally:
        if ledger is not None:
            ledger.terminate()
            ledger.wait(timeout=30)
        kafka.stop()
        pg.stop()
        if args.keep:
            print(f"data kept in {work}")
        else:  # ~2 GB per 300,000 entries
            shutil.rmtree(work, ignore_errors=True)
    report(args, produce_rate, result)


def report(args: argparse.Namespace, produce_rate: float, result: dict[str, Any]) -> None:
    samples = result["samples"]
    first_t = next(t for t, size, _, _ in samples if size > 0)
    done_t = samples[-1][0]
    cpu_us, append_rate = cpu_per_entry(samples, args.entries)
    out = {
        "machine": describe("aiokafka", "asyncpg", "blake3"),
        "entries": args.entries, "payload_bytes": args.payload, "max_records": args.max_records,
        "produce_records_per_s": round(produce_rate),
        "ledger_catch_up_entries_per_s": round(args.entries / (done_t - first_t)),
        "ledger_append_entries_per_s": round(append_rate),
        "ledger_cpu_us_per_entry": round(cpu_us, 1),
        "rss_mib_at_100k": rss_at(samples, 100_000), "rss_mib_at_1m": rss_at(samples, 1_000_000),
        "rss_mib_max": max(r for _, _, r, _ in samples),
        "samples": [{"t": round(t, 1), "entries": s, "rss_mib": round(r, 1), "cpu_s": round(c, 2)}
                    for t, s, r, c in samples],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))
    for k, v in out.items():
        if k != "samples":
            print(f"{k}: {v}")


if __name__ == "__main__":
    main()
