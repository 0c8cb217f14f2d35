"""OTLP trace ingest against native events on ``sealtrail serve``: tool calls per second into the ledger.

Usage: ``python bench/bench_otlp.py [--events N] [--batch B] [--concurrency C] [--rounds R] [--stack]``

Builds N tool-call spans (``execute_tool``, arguments and result of ~300 bytes, an ``enduser.id``
subject, a session) as binary OTLP protobuf requests of B spans, and the very same events (each
span mapped by ``services.ingest.otlp.mapping``, so ids, headers, payloads and subjects are
identical) as ``/v1/events`` batches of B. Then, per round and per side, a fresh ``sealtrail serve``
receives them over C connections (sleeping Retry-After on a 429), and the driver waits until the
ledger has sequenced all N (SQLite ``logs.size``, read-only). The rate is N over the time from the
first request to the last entry sequenced. The server's CPU time per event is reported too, and
the ratio of the two sides' CPU per event: the one process is CPU-bound, so on a machine others
load (the wall-clock rates then move by 2x between rounds) that ratio is the steadier figure. Sides
alternate per round (native first in odd rounds) so drift on a shared machine hits both.
All bodies are built before timing; the OTLP side also pays for protobuf parsing and the mapping.
With ``--stack`` the same comparison runs on the production stack as well (``sealtrail ingest``
and ``sealtrail ledger`` processes, durable PostgreSQL and Kafka, one stack for every round, fresh
ids each round), reporting the log's growth rate and the CPU per event of ingest and the ledger.
Writes bench/results/otlp.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg
import httpx
import orjson
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from bench.bench_e2e import start_ledger
from bench.bench_ingest import provision, start_ingest, stop
from bench.ingest_load import live_cpu_s, tree_cpu_s
from bench.machine import describe
from sealtrail.devstack import KafkaServer, PostgresServer
from sealtrail.devstack._proc import free_port
from services.ingest.otlp.mapping import DEFAULT_SUBJECT_RULES, map_span, parse_subject_rules
from services.ingest.otlp.spans import read_protobuf
from tests.support.serve import Served, start_serve

RESULTS = Path(__file__).resolve().parent / "results" / "otlp.json"
PACKAGES = ("fastapi", "uvicorn", "pydantic", "orjson", "protobuf", "opentelemetry-proto", "httpx")
TARGET = 0.8


def _kv(key: str, value: str) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(string_value=value))


def build_bodies(count: int, batch: int) -> tuple[list[bytes], list[bytes]]:
    """(OTLP protobuf bodies, /v1/events JSON bodies) holding the same events."""
    otlp: list[bytes] = []
    native: list[bytes] = []
    rules = parse_subject_rules(DEFAULT_SUBJECT_RULES)
    base = time.time_ns() - 2_000_000_000
    for first in range(0, count, batch):
        spans = []
        for i in range(first, min(first + batch, count)):
            start = base + i * 1000
            spans.append(Span(
                trace_id=os.urandom(16), span_id=os.urandom(8), name="execute_tool lookup_customer",
                kind=Span.SPAN_KIND_INTERNAL, start_time_unix_nano=start, end_time_unix_nano=start + 3_400_000,
                attributes=[_kv("gen_ai.operation.name", "execute_tool"), _kv("gen_ai.tool.name", "lookup_customer"),
                            _kv("gen_ai.agent.name", "support-bot"), _kv("server.address", "crm.internal"),
                            _kv("mcp.session.id", f"session-{i % 97}"), _kv("enduser.id", f"user{i % 500}@example.com"),
                            _kv("gen_ai.tool.call.arguments", json.dumps({"customer": i, "fields": ["name", "email"],
                                                                          "note": "x" * 120})),
                            _kv("gen_ai.tool.call.result", json.dumps({"name": "Alice Example", "tier": "gold",
                                                                       "notes": "y" * 100}))]))
        request = ExportTraceServiceRequest(resource_spans=[ResourceSpans(
            resource=Resource(attributes=[_kv("service.name", "bench-agent")]), scope_spans=[ScopeSpans(spans=spans)])])
        body = request.SerializeToString()
        otlp.append(body)
        native.append(orjson.dumps({"events": [map_span(s, rules).event for s in read_protobuf(body)]}))
    return otlp, native


def sequenced(db: Path) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT coalesce(sum(size), 0) FROM logs").fetchone()[0])
    finally:
        conn.close()


async def _sender(client: httpx.AsyncClient, path: str, media: str, token: str, queue: list[bytes],
                  statuses: dict[int, int]) -> None:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": media}
    while queue:
        body = queue.pop()
        while True:
            resp = await client.post(path, content=body, headers=headers)
            statuses[resp.status_code] = statuses.get(resp.status_code, 0) + 1
            if resp.status_code in (429, 503):
                await asyncio.sleep(float(resp.headers.get("retry-after", "1")))
                continue
            if resp.status_code not in (200, 202) or (path == "/v1/traces" and resp.content not in (b"", b"{}")):
                raise SystemExit(f"{path} answered {resp.status_code}: {resp.content[:300]!r}")
            break


async def run_side(served: Served, side: str, bodies: list[bytes], count: int, concurrency: int) -> dict[str, Any]:
    path, media = ("/v1/traces", "application/x-protobuf") if side == "otlp" else ("/v1/events", "application/json")
    db = served.data_dir / "sealtrail.db"
    queue = list(reversed(bodies))
    statuses: dict[int, int] = {}
    cpu_before = live_cpu_s(served.proc.pid)
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=served.url, timeout=60) as client:
        await asyncio.gather(*(_sender(client, path, media, served.tokens["gateway"], queue, statuses)
                               for _ in range(concurrency)))
    sent_s = time.perf_counter() - started
    while (done := await asyncio.to_thread(sequenced, db)) < count:
        if time.perf_counter() - started > 600:
            raise SystemExit(f"{side}: only {done} of {count} sequenced after 600 s")
        await asyncio.sleep(0.02)
    total_s = time.perf_counter() - started
    cpu = live_cpu_s(served.proc.pid) - cpu_before
    return {"per_s_into_ledger": round(count / total_s), "accepted_per_s": round(count / sent_s),
            "seconds": round(total_s, 2), "statuses": {str(k): v for k, v in sorted(statuses.items())},
            "serve_cpu_us_per_event": round(1e6 * cpu / count)}


def one_round(side: str, bodies: list[bytes], count: int, concurrency: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"sealtrail-bench-otlp-{side}-") as tmp:
        served = start_serve(Path(tmp) / "data")
        try:
            return asyncio.run(run_side(served, side, bodies, count, concurrency))
        finally:
            served.stop()


async def stack_side(url: str, token: str, db_url: str, side: str, bodies: list[bytes], count: int,
                     concurrency: int, pids: dict[str, int]) -> dict[str, Any]:
    """One side on the stack: the log's growth by ``count`` entries, and each process's CPU."""
    path, media = ("/v1/traces", "application/x-protobuf") if side == "otlp" else ("/v1/events", "application/json")
    conn = await asyncpg.connect(db_url)
    try:
        base = int(await conn.fetchval("SELECT coalesce(sum(size), 0) FROM logs") or 0)
        queue = list(reversed(bodies))
        statuses: dict[int, int] = {}
        cpu_before = {name: tree_cpu_s(pid) for name, pid in pids.items()}
        started = time.perf_counter()
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            await asyncio.gather(*(_sender(client, path, media, token, queue, statuses) for _ in range(concurrency)))
        while int(await conn.fetchval("SELECT coalesce(sum(size), 0) FROM logs") or 0) < base + count:
            if time.perf_counter() - started > 600:
                raise SystemExit(f"stack {side}: not all {count} sequenced after 600 s")
            await asyncio.sleep(0.02)
        total_s = time.perf_counter() - started
    finally:
        await conn.close()
    cpu = {name: round(1e6 * (tree_cpu_s(pid) - cpu_before[name]) / count) for name, pid in pids.items()}
    return {"per_s_into_ledger": round(count / total_s), "seconds": round(total_s, 2),
            "statuses": {str(k): v for k, v in sorted(statuses.items())}, "cpu_us_per_event": cpu}


async def run_stack(args: argparse.Namespace, otlp: list[bytes], pg: PostgresServer, kafka: KafkaServer,
                    work: Path) -> dict[str, list[dict[str, Any]]]:
    token, env = await provision(pg.url, work)
    env = {**env, "SEALTRAIL_KAFKA_BOOTSTRAP": kafka.bootstrap, "SEALTRAIL_SIGNING_KEY_DIR": str(work / "keys")}
    ledger = start_ledger(env, work / "ledger.log", free_port())
    port = free_port()
    ingest = start_ingest(env, "sealtrail.sealed", port, 1, work / "ingest.log")
    runs: dict[str, list[dict[str, Any]]] = {"native": [], "otlp": []}
    try:
        await asyncio.sleep(3)  # the ledger joins its consumer group
        pids = {"ingest": ingest.pid, "ledger": ledger.pid}
        for side in ("native", "otlp"):  # warm-up, not recorded: connections, caches, the first keys
            warm = _fresh_ids(otlp[:2], side)
            await stack_side(f"http://127.0.0.1:{port}", token, pg.url, side, warm,
                             sum(len(read_protobuf(b)) for b in otlp[:2]), args.concurrency, pids)
        for r in range(args.rounds):
            for side in (("native", "otlp") if r % 2 == 0 else ("otlp", "native")):
                fresh = _fresh_ids(otlp, side)  # every round needs new event ids on the one stack
                runs[side].append(await stack_side(f"http://127.0.0.1:{port}", token, pg.url, side, fresh,
                                                   args.events, args.concurrency, pids))
                print("stack", side, runs[side][-1], file=sys.stderr)
    finally:
        stop(ingest)
        stop(ledger)
    return runs


def _fresh_ids(bodies: list[bytes], side: str) -> list[bytes]:
    """The OTLP bodies with new trace and span ids, as OTLP or as the /v1/events bodies of their events."""
    rules = parse_subject_rules(DEFAULT_SUBJECT_RULES)
    out = []
    for body in bodies:
        request = ExportTraceServiceRequest.FromString(body)
        for span in request.resource_spans[0].scope_spans[0].spans:
            span.trace_id, span.span_id = os.urandom(16), os.urandom(8)
        fresh = request.SerializeToString()
        out.append(fresh if side == "otlp" else
                   orjson.dumps({"events": [map_span(s, rules).event for s in read_protobuf(fresh)]}))
    return out


def stack(args: argparse.Namespace, otlp: list[bytes]) -> dict[str, list[dict[str, Any]]]:
    with tempfile.TemporaryDirectory(prefix="sealtrail-bench-otlp-stack-") as tmp:
        work = Path(tmp)
        pg = PostgresServer(datadir=work / "pg", durable=True)
        kafka = KafkaServer(datadir=work / "kafka")
        try:
            pg.start()
            kafka.start()
            return asyncio.run(run_stack(args, otlp, pg, kafka, work))
        finally:
            kafka.stop()
            pg.stop()


def summary(runs: dict[str, list[dict[str, Any]]], cpu_of: Any) -> dict[str, Any]:
    median = {side: statistics.median(r["per_s_into_ledger"] for r in rs) for side, rs in runs.items()}
    cpu = {side: statistics.median(cpu_of(r) for r in rs) for side, rs in runs.items()}
    return {"median_per_s_into_ledger": median, "otlp_over_native": round(median["otlp"] / median["native"], 3),
            "median_cpu_us_per_event": cpu, "otlp_over_native_by_cpu": round(cpu["native"] / cpu["otlp"], 3),
            "target": TARGET, "runs": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--stack", action="store_true",
                        help="also run both sides on the stack: ingest and ledger processes, Kafka, PostgreSQL")
    parser.add_argument("--no-results", action="store_true", help="print only; leave bench/results alone")
    args = parser.parse_args()
    otlp, native = build_bodies(args.events, args.batch)
    load_before = os.getloadavg()[0]
    runs: dict[str, list[dict[str, Any]]] = {"native": [], "otlp": []}
    for r in range(args.rounds):
        for side in (("native", "otlp") if r % 2 == 0 else ("otlp", "native")):
            runs[side].append(one_round(side, otlp if side == "otlp" else native, args.events, args.concurrency))
            print(side, runs[side][-1], file=sys.stderr)
    result = {"serve": summary(runs, lambda r: r["serve_cpu_us_per_event"])}
    if args.stack:
        result["stack"] = summary(stack(args, otlp), lambda r: sum(r["cpu_us_per_event"].values()))
    report = {"benchmark": "otlp", "machine": describe(*PACKAGES),
              "setup": vars(args) | {"load_average_1m_before": round(load_before, 2),
                                     "load_average_1m_after": round(os.getloadavg()[0], 2),
                                     "otlp_body_bytes": round(statistics.mean(map(len, otlp))),
                                     "native_body_bytes": round(statistics.mean(map(len, native)))},
              "result": result}
    print(json.dumps(report, indent=2))
    if not args.no_results:
        RESULTS.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
