"""End-to-end benchmark: ingest -> Kafka -> ledger -> PostgreSQL -> signed checkpoint.

Usage: ``python bench/bench_e2e.py [--seconds S] [--concurrency C] [--ingest-workers W] [--rate R]``

Everything runs on this machine: durable PostgreSQL and Kafka (sealtrail.devstack), ``sealtrail
ingest`` and ``sealtrail ledger`` as separate processes, and this driver, which sends batches of 500 (``--batch``)
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
from prometheus_client.parser import text_string_to_metric_families

from bench.bench_ingest import PACKAGES, provision, receipt_verifier, start_ingest, stop
from bench.ingest_load import CpuMeter, process_cpu_s, tree_cpu_s
from bench.machine import describe, rss_mib
from sealtrail.cli.bench import percentiles
from sealtrail.cli.benchload import AnswerCheck, Load, send
from sealtrail.devstack import KafkaServer, PostgresServer
from sealtrail.devstack._proc import free_port

RESULTS = Path(__file__).resolve().parent / "results" / "e2e.json"
ROOT = Path(__file__).resolve().parents[1]


def start_ledger(env: dict[str, str], log: Path, port: int) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "sealtrail.cli.main", "ledger", "--port", str(port)],
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


class PostgresCpu:
    """PostgreSQL's CPU split by role: each client's backends (by application_name) and each
    background process (WAL writer, checkpointer, ...); "exited" is what processes that ended
    during the window used (autovacuum workers, mostly)."""

    def __init__(self, db_url: str, postmaster: int) -> None:
        self._url = db_url
        self._postmaster = postmaster
        self._start: dict[int, float] = {}
        self._start_tree = 0.0

    async def _labels(self) -> dict[int, str]:
        conn = await asyncpg.connect(self._url)
        try:
            rows = await conn.fetch("SELECT pid, backend_type, application_name FROM pg_stat_activity")
        finally:
            await conn.close()
        return {r["pid"]: (r["application_name"] or "other clients") if r["backend_type"] == "client backend"
                else r["backend_type"] for r in rows}

    async def start(self) -> None:
        labels = await self._labels()
        self._start = process_cpu_s([*labels, self._postmaster])
        self._start_tree = tree_cpu_s(self._postmaster)

    async def stop(self) -> dict[str, float]:
        labels = {**await self._labels(), self._postmaster: "postmaster"}
        now = process_cpu_s(list(labels))
        out: dict[str, float] = {}
        for pid, cpu in now.items():
            label = labels[pid]
            out[label] = out.get(label, 0.0) + cpu - self._start.get(pid, 0.0)
        out["exited"] = tree_cpu_s(self._postmaster) - self._start_tree - sum(out.values())
        return {k: round(v, 2) for k, v in sorted(out.items(), key=lambda kv: -kv[1])}


# The ledger's own view of where an event's time goes (histograms of its /metrics).
STAGES = {"batch": "sealtrail_ledger_batch_seconds", "commit": "sealtrail_ledger_commit_seconds",
          "checkpoint_delay": "sealtrail_ledger_checkpoint_delay_seconds"}


async def ledger_stages(port: int) -> dict[str, dict[str, float]]:
    """Count, mean and the bucket bound under which 99% fall, of each histogram in :data:`STAGES`."""
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    out = {}
    for stage, name in STAGES.items():
        family = families.get(name)
        if family is None:
            continue
        buckets = sorted((float(s.labels["le"]), s.value) for s in family.samples if s.name.endswith("_bucket"))
        count = next((s.value for s in family.samples if s.name.endswith("_count")), 0.0)
        total = next((s.value for s in family.samples if s.name.endswith("_sum")), 0.0)
        p99 = next((le for le, n in buckets if count and n >= 0.99 * count), float("nan"))
        out[stage] = {"count": count, "mean": round(total / count, 3) if count else 0.0, "p99_at_most": p99}
    return out


async def top_statements(db_url: str, n: int = 12) -> list[dict[str, Any]]:
    """The statements that took the most server time (pg_stat_statements)."""
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        rows = await conn.fetch(
            "SELECT left(regexp_replace(query, '\\s+', ' ', 'g'), 100) AS query, calls, rows,"
            " round(total_exec_time::numeric / 1000, 2) AS total_s,"
            " round((total_exec_time / greatest(rows, 1) * 1000)::numeric, 2) AS us_per_row"
            " FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT $1", n)
    finally:
        await conn.close()
    return [{k: (float(v) if k in ("total_s", "us_per_row") else v) for k, v in r.items()} for r in rows]


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
    ledger_port = free_port()
    ledger = start_ledger(env, work / "ledger.log", ledger_port)
    port = free_port()
    ingest = start_ingest(env, "sealtrail.sealed", port, args.ingest_workers, work / "ingest.log")
    verifier = receipt_verifier(Path(env["SEALTRAIL_SERVICE_KEY_FILE"]))
    cpu = CpuMeter({"ingest": ingest.pid, "ledger": ledger.pid, "kafka": kafka.pid() or 0,
                    "postgres": pg.pid() or 0})
    pg_cpu = PostgresCpu(pg.url, pg.pid() or 0)
    accepted: list[tuple[float, list[str]]] = []
    seen: list[tuple[float, int]] = []
    done = asyncio.Event()
    watcher = asyncio.create_task(watch_checkpoints(pg.url, done, seen))
    rss: list[float] = []
    try:
        await asyncio.sleep(3)  # the ledger joins its consumer group
        cpu.start()
        await pg_cpu.start()
        started = time.perf_counter()
        load = Load(f"http://127.0.0.1:{port}", token, args.seconds, args.concurrency, args.batch, 1024, args.rate)
        sent = await send(load, AnswerCheck([verifier], 50, log="bench"))
        sent_s, statuses, accepted = time.perf_counter() - started, sent.statuses, sent.accepted
        requests = percentiles(sent.request_s)
        cpu_s = cpu.stop()
        pg_cpu_s = await pg_cpu.stop()
        total = sum(len(ids) for _, ids in accepted)
        while not seen or seen[-1][1] < total:
            rss.append(rss_mib(ledger.pid))
            await asyncio.sleep(0.2)
        drained_s = time.perf_counter() - started
        rss.append(rss_mib(ledger.pid))
        stages = await ledger_stages(ledger_port)
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
        "request_s": requests,
        "ledger_rss_mib_end": round(rss[-1], 1) if rss else None,
        "ledger_stages_s": stages,
        "cpu_s_while_sending": cpu_s,
        "cpu_us_per_event": {k: round(v / total * 1e6, 1) for k, v in cpu_s.items()} if total else {},
        "postgres_cpu_us_per_event": {k: round(v / total * 1e6, 1) for k, v in pg_cpu_s.items()} if total else {},
        **({"top_statements": await top_statements(pg.url)} if args.pg_statements else {}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--batch", type=int, default=500, help="events per request")
    parser.add_argument("--ingest-workers", type=int, default=1)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--results", type=Path, default=RESULTS, help="where to write the JSON report")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="offered load in events/s on a fixed schedule (0: as fast as answers come)")
    parser.add_argument("--pg-statements", action="store_true",
                        help="load pg_stat_statements and report the statements that took the most server time")
    parser.add_argument("--kafka-setting", action="append", default=[], metavar="NAME=VALUE",
                        help="a broker property for this run (repeatable)")
    parser.add_argument("--pg-setting", action="append", default=[], metavar="NAME=VALUE",
                        help="an extra PostgreSQL server setting (repeatable)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sealtrail-bench-e2e-") as tmp:
        work = Path(tmp)
        settings = [*args.pg_setting, *(["shared_preload_libraries=pg_stat_statements"] if args.pg_statements else [])]
        pg = PostgresServer(datadir=work / "pg", durable=True, settings=tuple(settings))
        kafka = KafkaServer(datadir=work / "kafka", settings=dict(kv.split("=", 1) for kv in args.kafka_setting))
        try:
            pg.start()
            kafka.start()
            result = asyncio.run(run(args, pg, kafka, work))
        finally:
            kafka.stop()
            pg.stop()
    setup = {k: v for k, v in vars(args).items() if k != "results"}
    report = {"benchmark": "e2e", "machine": describe(*PACKAGES), "setup": setup | {"batch_events": args.batch,
              "event_bytes": 1024, "postgres_durable": True, "kafka_acks": "all"}, "result": result}
    print(json.dumps(report, indent=2))
    args.results.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
