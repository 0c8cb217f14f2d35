"""Ingest benchmark: events/s into Kafka and request latency, for 1 KiB events in batches of 500.

Usage: ``python bench/bench_ingest.py [--seconds S] [--concurrency C] [--workers 1,2]``

Starts durable PostgreSQL and Kafka (sealtrail.devstack) in a temporary directory, creates a
tenant and a gateway key, runs ``sealtrail ingest`` under uvicorn as a separate process (once per
worker count), and drives it with C concurrent keep-alive connections, each sending batches of
500 events of ~1 KiB (one subject each, drawn from 100) as fast as answers come back.

The driver shares the two cores with ingest, so it is kept cheap: each connection builds its
body once and only writes a new send counter into the event ids before each send (every id of
the run stays unique), speaks HTTP/1.1 itself, and counts a 202 answer's receipts instead of
parsing it; one answer in ``--check-every`` is parsed and checked in full (the sent ids, no
rejections, one receipt verified against the service key). Only 202 answers count, those that
arrive within the measured window; the topic's end offsets must equal all accepted events.
The results give the CPU seconds of ingest, Kafka, PostgreSQL, this driver and everything else
on the machine over the window. Writes bench/results/ingest.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from bench.ingest_load import CpuMeter
from bench.machine import describe
from sealtrail.cli.benchload import SUBJECTS, AnswerCheck, BodyTemplate, Connection, event_templates
from sealtrail.core.note import Ed25519Signer, Ed25519Verifier
from sealtrail.devstack import KafkaServer, PostgresServer
from sealtrail.devstack._proc import free_port
from tests.support.pipeline import provision_tenant

RESULTS = Path(__file__).resolve().parent / "results" / "ingest.json"
ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("fastapi", "uvicorn", "uvloop", "httptools", "aiokafka", "asyncpg", "pydantic", "orjson",
            "pynacl", "blake3", "httpx", "rfc8785")
EVENT_BYTES = 1024


async def provision(db_url: str, workdir: Path) -> tuple[str, dict[str, str]]:
    """KEK and receipt-key files, tenant ``bench`` and a gateway key; the env ingest runs with."""
    token, env = await provision_tenant(db_url, workdir, "bench")
    return token, {**env, "SEALTRAIL_LOG_LEVEL": "WARNING"}


def receipt_verifier(key_file: Path) -> Ed25519Verifier:
    """The verifier of the receipt key that :func:`provision` wrote."""
    return Ed25519Signer.from_private_key(key_file.read_text().strip()).verifier()


def start_ingest(
    env: dict[str, str], topic: str, port: int, workers: int, log: Path, profile: Path | None = None
) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "sealtrail.cli.main", "ingest", "--port", str(port),
           "--workers", str(workers)]
    if profile is not None:  # pyinstrument around the whole server process (one worker)
        cmd[1:1] = ["-m", "pyinstrument", "-r", "text", "--show-all", "-o", str(profile)]
    full_env = {**os.environ, **env, "SEALTRAIL_SEALED_TOPIC": topic}
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, env=full_env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise SystemExit(f"ingest exited during start; see {log}")
        time.sleep(0.3)
    raise SystemExit(f"ingest did not become ready; see {log}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


async def drive(url: str, token: str, verifier: Ed25519Verifier, *, seconds: float, warmup: float,
                concurrency: int, batch: int, event_bytes: int, cpu: CpuMeter,
                check_every: int) -> dict[str, Any]:
    """C connections sending batches back to back; counts the answers that arrive in the window."""
    parts = event_templates(event_bytes)
    host, port = url.removeprefix("http://").rsplit(":", 1)
    check = AnswerCheck([verifier], check_every, log="bench")
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    statuses_all: dict[int, int] = {}
    accepted = accepted_all = 0
    start = time.perf_counter()
    measure_from, end = start + warmup, start + warmup + seconds
    start_ms = time.time_ns() // 1_000_000

    async def worker(n: int) -> None:
        nonlocal accepted, accepted_all
        body = BodyTemplate(parts, batch, n, start_ms)
        conn = Connection(host, int(port), token)
        try:
            while time.perf_counter() < end:
                counter = body.next()
                sent = time.perf_counter()
                status, _, answer = await conn.post(body.body)
                done = time.perf_counter()
                count = check.accepted(answer, body.event_ids(counter)) if status == 202 else 0
                accepted_all += count
                statuses_all[status] = statuses_all.get(status, 0) + 1
                if measure_from <= done < end:
                    statuses[status] = statuses.get(status, 0) + 1
                    latencies.append(done - sent)
                    accepted += count
        finally:
            await conn.close()

    async def cpu_window() -> dict[str, float]:
        await asyncio.sleep(measure_from - time.perf_counter())
        cpu.start()
        await asyncio.sleep(end - time.perf_counter())
        return cpu.stop()

    window = asyncio.create_task(cpu_window())
    await asyncio.gather(*(worker(n) for n in range(concurrency)))
    used = await window
    latencies.sort()

    def per_event(s: float) -> float | None:
        return round(s / accepted * 1e6, 1) if accepted else None

    return {
        "events_per_s": round(accepted / seconds),
        "ingest_cpu_s": used["ingest"],
        "ingest_cpu_us_per_event": per_event(used["ingest"]),
        "cpu_s": used,
        "cpu_us_per_event": {name: per_event(s) for name, s in used.items()},
        "accepted_events": accepted,
        "accepted_events_incl_warmup": accepted_all,
        "answers_checked_in_full": check.checked,
        "receipts_verified": check.checked,
        "requests": len(latencies),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "statuses_incl_warmup": {str(k): v for k, v in sorted(statuses_all.items())},
        "latency_ms": {
            "p50": round(statistics.median(latencies) * 1000, 1) if latencies else None,
            "p99": round(latencies[int(0.99 * (len(latencies) - 1))] * 1000, 1) if latencies else None,
            "max": round(latencies[-1] * 1000, 1) if latencies else None,
        },
    }


async def topic_total(bootstrap: str, topic: str) -> int:
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p["partition"]) for p in described["partitions"]]
        return sum((await consumer.end_offsets(tps)).values())
    finally:
        await consumer.stop()


async def run_one(args: argparse.Namespace, env: dict[str, str], access: tuple[str, Ed25519Verifier],
                  servers: tuple[PostgresServer, KafkaServer], workers: int, workdir: Path) -> dict[str, Any]:
    pg, kafka = servers
    topic = f"bench.sealed.w{workers}"
    port = free_port()
    proc = start_ingest({**env, "SEALTRAIL_KAFKA_BOOTSTRAP": kafka.bootstrap}, topic, port, workers,
                        workdir / f"ingest-w{workers}.log", args.profile)
    cpu = CpuMeter({"ingest": proc.pid, "kafka": kafka.pid() or 0, "postgres": pg.pid() or 0})
    try:
        result = await drive(f"http://127.0.0.1:{port}", *access, seconds=args.seconds, warmup=args.warmup,
                             concurrency=args.concurrency, batch=args.batch, event_bytes=args.event_bytes,
                             cpu=cpu, check_every=args.check_every)
    finally:
        stop(proc)
    on_topic = await topic_total(kafka.bootstrap, topic)
    result["records_on_topic_incl_warmup"] = on_topic
    # Only a 503 may leave records of an unaccepted batch on the topic; with none, the counts match.
    clean = all(k == "202" for k in result["statuses_incl_warmup"])
    result["topic_matches_accepted"] = on_topic == result["accepted_events_incl_warmup"] if clean else None
    result["load_average"] = [round(x, 2) for x in os.getloadavg()]
    result["workers"] = workers
    return result


async def runs(args: argparse.Namespace, pg: PostgresServer, kafka: KafkaServer,
               workdir: Path) -> list[dict[str, Any]]:
    token, env = await provision(pg.url, workdir)
    access = (token, receipt_verifier(Path(env["SEALTRAIL_SERVICE_KEY_FILE"])))
    out = []
    for workers in args.workers:
        print(f"ingest with {workers} worker(s): {args.concurrency} connections, "
              f"{args.warmup:.0f} s warm-up + {args.seconds:.0f} s ...", flush=True)
        out.append(await run_one(args, env, access, (pg, kafka), workers, workdir))
        print(json.dumps(out[-1]), flush=True)
    return out


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Start the servers (outside any event loop: their start-up probe runs its own), run, stop."""
    with tempfile.TemporaryDirectory(prefix="sealtrail-bench-ingest-") as tmp:
        workdir = Path(tmp)
        pg = PostgresServer(datadir=workdir / "pg", durable=True)
        kafka = KafkaServer(datadir=workdir / "kafka")
        try:
            pg.start()
            kafka.start()
            results = asyncio.run(runs(args, pg, kafka, workdir))
        finally:
            kafka.stop()
            pg.stop()
    return {"benchmark": "ingest", "machine": describe(*PACKAGES),
            "setup": {"batch_events": args.batch, "event_bytes": args.event_bytes,
                      "concurrency": args.concurrency, "seconds": args.seconds, "warmup_s": args.warmup,
                      "postgres_durable": True, "kafka_acks": "all", "subjects": SUBJECTS,
                      "answers_checked_in_full": f"1 in {args.check_every}"},
            "runs": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--event-bytes", type=int, default=EVENT_BYTES)
    parser.add_argument("--workers", type=lambda s: [int(w) for w in s.split(",")], default=[1, 2])
    parser.add_argument("--check-every", type=int, default=50,
                        help="check one 202 answer in this many in full (JSON, ids, one receipt)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where to write the JSON report")
    parser.add_argument("--profile", type=Path, default=None,
                        help="write a pyinstrument profile of the ingest process here (use --workers 1)")
    args = parser.parse_args()
    report = measure(args)
    print(json.dumps(report["machine"], indent=2))
    for run in report["runs"]:
        print(f"workers={run['workers']}: {run['events_per_s']:,} events/s accepted, "
              f"p50 {run['latency_ms']['p50']} ms, p99 {run['latency_ms']['p99']} ms per request of "
              f"{args.batch} events; statuses {run['statuses']}; ingest CPU "
              f"{run['ingest_cpu_us_per_event']} us/event, driver CPU {run['cpu_us_per_event']['driver']} "
              f"us/event; topic matches accepted: {run['topic_matches_accepted']}; load average "
              f"{run['load_average']}")
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.results}")
    if any(run["topic_matches_accepted"] is False for run in report["runs"]):
        raise SystemExit("the topic does not hold exactly the accepted events")


if __name__ == "__main__":
    main()
