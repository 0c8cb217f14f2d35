"""Projector and analytics benchmark: project a month of tool calls, then time the analytics API.

Usage: ``python bench/bench_query_analytics.py [--entries N] [--days D] [--runs R] [--profile]``

Starts a durable PostgreSQL (sealtrail.devstack), appends N entries (default 1,000,000) of one
tenant spread over D days (default 30) through the ledger's store and sequencer, exactly as the
ledger commits them: 12 tools on 4 servers, 8 agents, sessions, denials, step-ups, errors,
costs, tool-list snapshots with occasional definition changes, rate-limit events and subject
keys. Then times the projector (entries/s) and each analytics endpoint through the real router
and API-key authentication, R times each (p50/p95). Targets: analytics over 30 days <= 100 ms.
Writes bench/results/query_analytics.json.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg
import httpx

from bench.machine import describe
from sealtrail.core.record import SealedRecord
from sealtrail.devstack import PostgresServer
from sealtrail.infra.postgres import migrate_url
from services.projector.postgres import PostgresProjectorStore
from services.projector.projector import Projector
from tests.support.analytics import analytics_app, append, provision, ts
from tests.support.ledger import uuid7

RESULTS = Path(__file__).resolve().parent / "results" / "query_analytics.json"
TARGET_MS = 100.0
TENANT = "bench"
SERVERS = {
    "srv-db": ["db.query", "db.write", "db.admin"],
    "srv-web": ["web.get", "web.post", "web.search"],
    "srv-mail": ["mail.send", "mail.read"],
    "srv-files": ["files.read", "files.write", "files.delete", "files.list"],
}
TOOLS = [(s, t) for s, ts_ in SERVERS.items() for t in ts_]
AGENTS = [f"agent-{i:02d}" for i in range(1, 9)]
END = datetime(2025, 6, 1, tzinfo=UTC)


class Generator:
    """Deterministic synthetic traffic, roughly in time order."""

    def __init__(self, *, entries: int, days: int, subject_keys: list[str], period_keys: dict[str, str]) -> None:
        self.rnd = random.Random(1)
        self.start = END - timedelta(days=days)
        self.step = timedelta(days=days) / entries
        self.subject_keys = subject_keys
        self.period_keys = period_keys
        self.versions = {tool: 1 for tool in TOOLS}
        self.sessions = {a: 0 for a in AGENTS}

    def _def_hash(self, tool: tuple[str, str]) -> str:
        return "sha256:" + hashlib.sha256(f"{tool}{self.versions[tool]}".encode()).hexdigest()

    def record(self, i: int) -> SealedRecord:
        at = self.start + self.step * i + timedelta(seconds=self.rnd.uniform(-30, 30))
        roll = self.rnd.random()
        if roll < 0.004:
            fields = self._tool_list()
        elif roll < 0.009:
            fields = {"type": "rate_limit", "limit_id": "per-agent-minute", "window_s": 60, "limit": 120,
                      "observed": self.rnd.randint(121, 300), "scope": "agent", "agent_id": self.rnd.choice(AGENTS)}
        else:
            fields = self._call()
        keys = [self.period_keys[at.strftime("%Y-%m")]]
        if self.rnd.random() < 0.3:
            keys.append(self.rnd.choice(self.subject_keys))
        header = {"event_id": uuid7(), "occurred_at": ts(at), "received_at": ts(at), "tenant": TENANT,
                  "gateway_id": "gw-bench", **fields, "key_ids": keys,
                  "payload_digest": "blake3:" + os.urandom(32).hex(), "payload_size": 200}
        return SealedRecord(TENANT, header, os.urandom(24), os.urandom(16))

    def _tool_list(self) -> dict[str, Any]:
        server = self.rnd.choice(list(SERVERS))
        if self.rnd.random() < 0.02:  # now and then a definition changes
            tool = (server, self.rnd.choice(SERVERS[server]))
            self.versions[tool] += 1
        return {"type": "tool_list", "server_id": server,
                "tools": [{"name": t, "def_hash": self._def_hash((server, t))} for t in SERVERS[server]]}

    def _call(self) -> dict[str, Any]:
        r = self.rnd
        server, tool = r.choice(TOOLS)
        agent = r.choice(AGENTS)
        if r.random() < 0.02:
            self.sessions[agent] += 1
        decision = r.choices(["allow", "deny", "step_up", "observe"], [90, 5, 3, 2])[0]
        status = {"deny": "denied", "step_up": "pending"}.get(decision) or r.choices(
            ["ok", "error", "timeout"], [94, 4, 2])[0]
        f: dict[str, Any] = {"type": "tool_call", "agent_id": agent, "session_id": f"{agent}-s{self.sessions[agent]}",
                             "server_id": server, "tool_name": tool, "decision": decision, "status": status,
                             "tool_def_hash": self._def_hash((server, tool))}
        if status in ("ok", "error", "timeout"):
            f["latency_ms"] = int(r.lognormvariate(4 + TOOLS.index((server, tool)) % 4, 0.8))
        if tool in ("web.search", "mail.send"):
            f["cost_micros"], f["currency"] = r.randint(100, 5000), "USD"
        return f


async def load(pool: asyncpg.Pool, entries: int, days: int) -> float:
    """Append the synthetic log; return entries/s of generation plus append."""
    subject_keys = [os.urandom(16).hex() for _ in range(2000)]
    await pool.executemany(
        "INSERT INTO data_keys (key_id, tenant_id, kind, subject_ref, wrapped, kek_id)"
        " VALUES ($1, $2, 'subject', $3, $4, 'bench')",
        [(k, TENANT, os.urandom(32), os.urandom(72)) for k in subject_keys])
    months = {(END - timedelta(days=d)).strftime("%Y-%m") for d in range(days + 2)}
    period_keys = {m: os.urandom(16).hex() for m in sorted(months)}
    gen = Generator(entries=entries, days=days, subject_keys=subject_keys, period_keys=period_keys)
    started = time.perf_counter()
    for pos in range(0, entries, 50_000):
        await append(pool, TENANT, [gen.record(i) for i in range(pos, min(entries, pos + 50_000))], chunk=5000)
        print(f"\r  loaded {min(entries, pos + 50_000):,}", end="", flush=True)
    print()
    return entries / (time.perf_counter() - started)


async def project(pool: asyncpg.Pool, profile: bool) -> tuple[float, float]:
    """Project everything; return (entries/s, seconds)."""
    projector = Projector(store=PostgresProjectorStore(pool=pool), batch_entries=5000)
    profiler = None
    if profile:
        from pyinstrument import Profiler

        profiler = Profiler(async_mode="enabled")
        profiler.start()
    started = time.perf_counter()
    done = await projector.catch_up()
    elapsed = time.perf_counter() - started
    if profiler is not None:
        profiler.stop()
        print(profiler.output_text(unicode=False, color=False, show_all=False)[:6000])
    return done / elapsed, elapsed


def _pct(samples: list[float]) -> dict[str, float]:
    s = sorted(samples)
    return {"p50_ms": round(statistics.median(s), 2), "p95_ms": round(s[min(len(s) - 1, int(0.95 * len(s)))], 2),
            "max_ms": round(s[-1], 2)}


async def time_endpoints(pool: asyncpg.Pool, token: str, runs: int, days: int) -> dict[str, dict[str, float]]:
    """p50/p95 of each endpoint over ``runs`` requests through the router with a real API key."""
    app = analytics_app(pool, now=END)
    month = {"from": ts(END - timedelta(days=days, minutes=30)), "to": ts(END - timedelta(minutes=30))}
    day = {"from": ts(END - timedelta(days=1)), "to": ts(END)}
    calls = {
        "tools_30d": ("/v1/analytics/tools", month), "agents_30d": ("/v1/analytics/agents", month),
        "servers_30d": ("/v1/analytics/servers", month), "tools_24h": ("/v1/analytics/tools", day),
        "rate_limits_30d": ("/v1/analytics/rate-limits", month), "first_use_30d": ("/v1/analytics/first-use", month),
        "definition_changes": ("/v1/analytics/definition-changes", {}),
        "drift_7d_baseline": ("/v1/analytics/drift", {}),
    }
    out: dict[str, dict[str, float]] = {}
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://q") as client:
        for name, (path, params) in calls.items():
            samples = []
            for i in range(runs + 3):
                started = time.perf_counter()
                r = await client.get(path, params=params, headers=headers)
                if i >= 3:  # the first requests warm plans and caches
                    samples.append((time.perf_counter() - started) * 1000)
                r.raise_for_status()
            out[name] = _pct(samples)
            print(f"  {name:22} p50 {out[name]['p50_ms']:8.2f} ms   p95 {out[name]['p95_ms']:8.2f} ms")
    return out


async def sizes(pool: asyncpg.Pool) -> dict[str, int]:
    tables = ["entries", "rollup_hourly", "rollup_tool_hourly", "rollup_tool_daily", "rollup_agent_hourly",
              "rollup_agent_daily", "rollup_rate_limits", "subject_index", "sessions",
              "tool_definitions", "tool_definition_changes", "tool_usage"]
    return {t: int(await pool.fetchval(f"SELECT count(*) FROM {t}")) for t in tables}


async def run(url: str, args: argparse.Namespace) -> dict[str, Any]:
    await migrate_url(url)
    pool = await asyncpg.create_pool(url, min_size=2, max_size=4)
    try:
        token = (await provision(pool, TENANT))[TENANT]
        print(f"loading {args.entries:,} entries over {args.days} days ...")
        load_rate = await load(pool, args.entries, args.days)
        await pool.execute("VACUUM ANALYZE")
        print("projecting ...")
        rate, seconds = await project(pool, args.profile)
        print(f"  projector: {rate:,.0f} entries/s ({seconds:.1f} s)")
        await pool.execute("VACUUM ANALYZE")
        rows = await sizes(pool)
        print(f"  rows: {rows}")
        print(f"analytics ({args.runs} runs each):")
        endpoints = await time_endpoints(pool, token, args.runs, args.days)
    finally:
        await pool.close()
    return {"load_entries_per_s": round(load_rate), "projector_entries_per_s": round(rate),
            "projector_seconds": round(seconds, 1), "rows": rows, "endpoints": endpoints}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--profile", action="store_true", help="profile the projector with pyinstrument")
    parser.add_argument("--no-write", action="store_true", help="do not write the results file")
    args = parser.parse_args()
    machine = describe("asyncpg", "orjson", "fastapi")
    print(json.dumps(machine, indent=2))
    with tempfile.TemporaryDirectory(prefix="sealtrail-bench-") as work:
        os.chmod(work, 0o755)
        pg = PostgresServer(datadir=Path(work) / "pg", durable=True)
        pg.start()
        try:
            figures = asyncio.run(run(pg.url, args))
        finally:
            pg.stop()
    slowest_30d = max(v["p95_ms"] for k, v in figures["endpoints"].items() if k.endswith("_30d"))
    out = {"machine": machine, "parameters": vars(args), **figures,
           "targets": {"analytics_30d_ms": TARGET_MS, "met": slowest_30d <= TARGET_MS}}
    print(f"slowest 30-day endpoint p95: {slowest_30d:.2f} ms (target <= {TARGET_MS:.0f} ms)")
    if not args.no_write:
        RESULTS.parent.mkdir(exist_ok=True)
        RESULTS.write_text(json.dumps(out, indent=2) + "\n")
        print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
