"""End-to-end benchmark: ingest -> Kafka -> ledger -> PostgreSQL -> signed checkpoint.

Usage: ``python bench/bench_e2e.py [--seconds S] [--concurrency C] [--ingest-workers W]``

Everything runs on this machine: durable PostgreSQL and Kafka (sealtrail.devstack), ``sealtrail
ingest`` and ``sealtrail ledger`` as separate processes, and this driver, which sends batches of 500
events of ~1 KiB for S seconds (60 by default) and watches the checkpoints table every 50 ms.
Reports the sustained rate of events accepted (202) and of events in a signed checkpoint, and the
latency from each event's 202 to the first signed checkpoint that includes it (p50/p99/max).
Writes bench/results/e2e.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg
import httpx
import orjson

from bench.bench_ingest import PACKAGES, batch_body, provision, start_ingest, stop, templates
from bench.machine import describe, rss_mib
from sealtrail.devstack import KafkaServer, PostgresServer
from sealtrail.devstack._proc import free_port

RESULTS = Path(__file__).resolve().parent / "results" / "e2e.json"
ROOT = Path(__file__).resolve().parents[1]


def start_ledger(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "sealtrail.cli.main", "ledger", "--port", str(free_port())],
                                env={**os.environ, **env}, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


async def watch_checkpoints(db_url: str, stop_at: asyncio.Event, seen: list[tuple[float, int]]) -> None:
    """Record (time observed, signed tree size) whenever the signed size grows."""
    conn = await asyncpg.connect(db_url)
    try:
        last = 0
        while not stop_at.is_set():
            size = await conn.fetchval("SELECT coalesce(max(tree_size), 0) FROM checkpoints") or 0
            if size > last:
                seen.append((time.perf_counter(), size))
                last = size
            await asyncio.sleep(0.05)
    finally:
        await conn.close()


async def send(url: str, token: str, seconds: float, concurrency: int, batch: int,
               accepted: list[tuple[float, list[str]]]) -> dict[int, int]:
    parts = templates(1024)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    statuses: dict[int, int] = {}
    end = time.perf_counter() + seconds

    async def worker(n: int) -> None:
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as client:
            offset = n * 1_000_003
            while time.perf_counter() < end:
                resp = await client.post("/v1/events", content=batch_body(parts, batch, offset))
                offset += batch
                statuses[resp.status_code] = statuses.get(resp.status_code, 0) + 1
                if resp.status_code == 202:
                    ids = [a["event_id"] for a in orjson.loads(resp.content)["accepted"]]
                    accepted.append((time.perf_counter(), ids))
                elif resp.status_code in (429, 503):
                    await asyncio.sleep(float(resp.headers.get("Retry-After", "1")))

    await asyncio.gather(*(worker(n) for n in range(concurrency)))
    return statuses


async def latencies(db_url: str, accepted: list[tuple[float, list[str]]],
                    seen: list[tuple[float, int]]) -> list[float]:
    """Seconds from each event's 202 to the first observed checkpoint covering its index."""
    conn = await asyncpg.connect(db_url)
    try:
        rows = await conn.fetch("SELECT event_id::text AS e, idx FROM entries")
    finally:
        await conn.close()
    index = {r["e"]: r["idx"] for r in rows}
    out = []
    for t_accepted, ids in accepted:
        for event_id in ids:
            idx = index[event_id]
            t_signed = next(t for t, size in seen if size > idx)
            out.append(max(0.0, t_signed - t_accepted))
    return out


async def run(args: argparse.Namespace, pg: PostgresServer, kafka: KafkaServer, work: Path) -> dict[str, Any]:
    token, env = await provision(pg.url, work)
    env = {**env, "SEALTRAIL_KAFKA_BOOTSTRAP": kafka.bootstrap, "SEALTRAIL_SIGNING_KEY_DIR": str(work / "keys"),
           "SEALTRAIL_TOPIC_PARTITIONS": str(args.partitions)}
    ledger = start_ledger(env, work / "ledger.log")
    port = free_port()
    ingest = start_ingest(env, "sealtrail.sealed", port, args.ingest_workers, work / "ingest.log")
    accepted: list[tuple[float, list[str]]] = []
    seen: list[tuple[float, int]] = []
    done = asyncio.Event()
    watcher = asyncio.create_task(watch_checkpoints(pg.url, done, seen))
    rss: list[float] = []
    try:
        started = time.perf_counter()
        statuses = await send(f"http://127.0.0.1:{port}", token, args.seconds, args.concurrency, 500, accepted)
        sent_s = time.perf_counter() - started
        total = sum(len(ids) for _, ids in accepted)
        while not seen or seen[-1][1] < total:
            rss.append(rss_mib(ledger.pid))
            await asyncio.sleep(0.2)
        drained_s = time.perf_counter() - started
        rss.append(rss_mib(ledger.pid))
    finally:
        done.set()
        await watcher
        stop(ingest)
        stop(ledger)
    lat = sorted(await latencies(pg.url, accepted, seen))
    return {
        "seconds_sending": round(sent_s, 1), "accepted_events": total,
        "accepted_per_s": round(total / sent_s), "signed_per_s_until_drained": round(total / drained_s),
        "drain_after_sending_s": round(drained_s - sent_s, 1),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "ack_to_checkpoint_s": {"p50": round(statistics.median(lat), 3),
                                "p99": round(lat[int(0.99 * (len(lat) - 1))], 3), "max": round(lat[-1], 3)},
        "ledger_rss_mib_end": round(rss[-1], 1) if rss else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--ingest-workers", type=int, default=1)
    parser.add_argument("--partitions", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sealtrail-bench-e2e-") as tmp:
        work = Path(tmp)
        pg = PostgresServer(datadir=work / "pg", durable=True)
        kafka = KafkaServer(datadir=work / "kafka")
        try:
            pg.start()
            kafka.start()
            result = asyncio.run(run(args, pg, kafka, work))
        finally:
            kafka.stop()
            pg.stop()
    report = {"benchmark": "e2e", "machine": describe(*PACKAGES), "setup": vars(args) | {"batch_events": 500,
              "event_bytes": 1024, "postgres_durable": True, "kafka_acks": "all"}, "result": result}
    print(json.dumps(report, indent=2))
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
