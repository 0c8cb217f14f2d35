"""Ledger benchmark: catch-up throughput from Kafka into PostgreSQL, and RSS as the log grows.

Usage: ``python bench/bench_ledger.py [--entries N] [--payload BYTES]``

Starts durable PostgreSQL and Kafka (sealtrail.devstack), produces N sealed records of one tenant
with ~1 KiB ciphertext straight to the sealed topic, then runs ``sealtrail ledger`` as a separate
process and samples its progress and RSS until every entry is in a signed checkpoint. Reports
entries/s and the ledger's RSS at 100,000 and 1,000,000 entries (tree state is O(log n), so RSS
should stay flat). Writes bench/results/ledger.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg
from aiokafka import AIOKafkaProducer

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


async def sample(db_url: str, pid: int, total: int) -> dict[str, Any]:
    """Poll the ledger's progress and RSS until a checkpoint covers every entry."""
    conn = await asyncpg.connect(db_url)
    samples: list[tuple[float, int, float]] = []
    started = time.perf_counter()
    try:
        while True:
            size = await conn.fetchval("SELECT coalesce(max(size), 0) FROM logs") or 0
            signed = await conn.fetchval("SELECT coalesce(max(tree_size), 0) FROM checkpoints") or 0
            samples.append((time.perf_counter() - started, size, rss_mib(pid)))
            if signed >= total:
                break
            await asyncio.sleep(1)
    finally:
        await conn.close()
    return {"samples": samples, "seconds": time.perf_counter() - started}


def rss_at(samples: list[tuple[float, int, float]], entries: int) -> float | None:
    for _, size, rss in samples:
        if size >= entries:
            return rss
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--payload", type=int, default=1024)
    parser.add_argument("--profile", type=Path, help="record the ledger with py-spy (collapsed stacks)")
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
               "SEALTRAIL_TOPIC_PARTITIONS": "1"}
        cmd = [sys.executable, "-m", "sealtrail.cli.main", "ledger", "--port", str(free_port())]
        ledger = subprocess.Popen(cmd, env=env)
        if args.profile:
            subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "--format", "raw",
                              "--pid", str(ledger.pid), "--duration", "10", "-o", str(args.profile)])
        result = asyncio.run(sample(pg.url, ledger.pid, args.entries))
    finally:
        if ledger is not None:
            ledger.terminate()
            ledger.wait(timeout=30)
        kafka.stop()
        pg.stop()
    report(args, produce_rate, result)


def report(args: argparse.Namespace, produce_rate: float, result: dict[str, Any]) -> None:
    samples = result["samples"]
    first_t = next(t for t, size, _ in samples if size > 0)
    done_t = samples[-1][0]
    out = {
        "machine": describe("aiokafka", "asyncpg", "blake3"),
        "entries": args.entries, "payload_bytes": args.payload,
        "produce_records_per_s": round(produce_rate),
        "ledger_catch_up_entries_per_s": round(args.entries / (done_t - first_t)),
        "rss_mib_at_100k": rss_at(samples, 100_000), "rss_mib_at_1m": rss_at(samples, 1_000_000),
        "rss_mib_max": max(r for _, _, r in samples),
        "samples": [{"t": round(t, 1), "entries": s, "rss_mib": round(r, 1)} for t, s, r in samples],
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2))
    for k, v in out.items():
        if k != "samples":
            print(f"{k}: {v}")


if __name__ == "__main__":
    main()
