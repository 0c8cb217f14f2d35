"""The same entries, written by each backend's ledger store and projected by each backend's
projector, give the same analytics and drift figures on SQLite as on PostgreSQL."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from sealtrail.core import histogram
from sealtrail.core.record import SealedRecord
from sealtrail.infra.auth import Principal, Role
from sealtrail.infra.postgres import migrate_url
from sealtrail.infra.problems import install_problem_handlers
from services.projector.projector import Projector
from services.query import analytics, drift
from services.query.windows import Window
from tests.support.analytics import call, def_hash, rate_limit, tool_list
from tests.support.query_backends import QueryBackend, postgres_query_backend, sqlite_query_backend

END = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
START = END - timedelta(days=7)
PATHS = ("/v1/analytics/tools", "/v1/analytics/agents", "/v1/analytics/servers", "/v1/analytics/rate-limits",
         "/v1/analytics/first-use", "/v1/analytics/definition-changes", "/v1/analytics/drift",
         "/v1/analytics/series")
SERIES = ({"from": (END - timedelta(days=30)).isoformat()}, {"server_id": "srv-a", "tool_name": "steady"},
          {"agent_id": "agent-2", "from": START.isoformat()}, {"tool_name": "spiky", "from": "2024-03-01T00:00:00Z"})


def _records(tenant: str) -> list[SealedRecord]:
    """A week of hourly traffic: a tool that spikes in the last hour, a steady noisy one with errors,
    denials, costs and two agents (its hours split between calls with a cost and calls without),
    rate limits, and a definition change three hours before the end."""
    rnd = random.Random(7)
    out = [tool_list(tenant, START, server="srv-a", tools={"spiky": def_hash("1"), "steady": def_hash("1")}),
           tool_list(tenant, END - timedelta(hours=3), server="srv-a",
                     tools={"spiky": def_hash("2"), "steady": def_hash("1")})]
    for h in range(7 * 24):
        hour = START + timedelta(hours=h)
        for i in range(40 if h == 7 * 24 - 1 else 2):
            out.append(call(tenant, hour + timedelta(seconds=i), tool="spiky", server="srv-a",
                            latency_ms=rnd.randint(5, 400), def_hash=def_hash("1")))
        for i in range(rnd.randint(2, 5)):
            status = rnd.choice(["ok", "ok", "ok", "error", "timeout"])
            decision = rnd.choice(["allow", "allow", "allow", "deny"])
            out.append(call(tenant, hour + timedelta(minutes=10 + i), tool="steady", server="srv-a",
                            agent=rnd.choice(["agent-1", "agent-2"]), decision=decision,
                            status="denied" if decision == "deny" else status,
                            latency_ms=None if decision == "deny" else rnd.randint(1, 9000),
                            cost_micros=None if rnd.random() < 0.3 else rnd.randint(0, 999)))
        if h % 24 == 5:
            out.append(rate_limit(tenant, hour + timedelta(minutes=50), limit_id="per-agent",
                                  observed=rnd.randint(101, 300)))
    return sorted(out, key=lambda r: str(r.header["occurred_at"]))


def _app(backend: QueryBackend) -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    app.include_router(analytics.router)
    reader = backend.stores.analytics
    app.dependency_overrides[analytics.get_principal] = lambda: Principal("k1", "acme", Role.INVESTIGATOR, "")
    app.dependency_overrides[analytics.get_analytics_reader] = lambda: reader
    app.dependency_overrides[analytics.get_clock] = lambda: (lambda: END + timedelta(minutes=20))
    return app


async def _figures(backend: QueryBackend, records: list[SealedRecord]) -> dict[str, Any]:
    await backend.tenant("acme")
    await backend.append("acme", records)
    assert await Projector(store=backend.projector, batch_entries=97).catch_up() == len(records)
    out: dict[str, Any] = {}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=_app(backend)), base_url="http://q") as client:
        for path in PATHS:
            for params in ({}, {"from": START.isoformat(), "to": END.isoformat()}):
                r = await client.get(path, params=params if path != "/v1/analytics/drift" else {})
                assert r.status_code == 200, r.text
                out[f"{path}?{sorted(params)}"] = r.json()
        for params in SERIES:
            r = await client.get("/v1/analytics/series", params=params)
            assert r.status_code == 200, r.text
            out[f"series?{sorted(params.items())}"] = r.json()
    return out


@pytest.fixture
async def both(fresh_db_url: str, tmp_path: Path) -> AsyncIterator[tuple[QueryBackend, QueryBackend]]:
    async with postgres_query_backend(fresh_db_url) as pg, sqlite_query_backend(tmp_path / "q.db") as lite:
        yield pg, lite


async def test_analytics_and_drift_equal_on_both_backends(both: tuple[QueryBackend, QueryBackend]) -> None:
    """Every analytics endpoint, drift included, answers the same on SQLite as on PostgreSQL for the
    same week of entries projected in batches; and the drift report is not trivially empty."""
    pg, lite = both
    records = _records("acme")
    on_pg, on_lite = await _figures(pg, records), await _figures(lite, records)
    assert on_lite == on_pg
    drift = on_pg["/v1/analytics/drift?[]"]
    assert {(f["tool_name"], f["metric"]) for f in drift["findings"]} >= {("spiky", "call_rate")}
    assert [c["tool_name"] for c in drift["definition_changes"]] == ["spiky"]
    week = on_pg[f"/v1/analytics/series?{sorted(['from', 'to'])}"]
    assert (week["bucket_hours"], len(week["points"])) == (1, 168)
    tools = on_pg[f"/v1/analytics/tools?{sorted(['from', 'to'])}"]["tools"]
    assert sum(p["calls"] for p in week["points"]) == sum(t["calls"] for t in tools) == len(records) - 9
    assert week["points"][-1]["calls"] > 40  # the spike
    month = on_pg[f"series?{sorted(SERIES[0].items())}"]
    assert (month["bucket_hours"], len(month["points"])) == (6, 121)
    long = on_pg[f"series?{sorted(SERIES[3].items())}"]
    assert long["bucket_hours"] == 48 and long["window"]["from"] == "2024-03-01T00:00:00Z"
    assert sum(p["calls"] for p in long["points"]) == 7 * 24 * 2 + 40 - 2


async def test_drift_baseline_equals_the_summary_of_the_hourly_rows(
        both: tuple[QueryBackend, QueryBackend]) -> None:
    """What drift reads on each backend (PostgreSQL: a row per tool and hour with the p95 the database
    stored) equals drift.summarize of the hourly rollup rows, hours split by currency included."""
    for backend in both:
        await backend.tenant("acme")
        await backend.append("acme", _records("acme"))
        await Projector(store=backend.projector, batch_entries=97).catch_up()
        window, reader = Window(START, END), backend.stores.analytics
        hours, bases = await reader.tool_hours("acme", window), await reader.drift_baseline("acme", window, 1)
        assert set(bases) == set(hours) == {("srv-a", "spiky"), ("srv-a", "steady")}
        for tool, by_hour in hours.items():
            want = drift.summarize(window.hours, [t.hour_stats() for t in by_hour.values()],
                                   drift.Thresholds(min_latency_samples=1))
            assert _normal(bases[tool]) == _normal(want), (backend.name, tool)
        assert any(m.sum > 0 for m in bases[("srv-a", "steady")].hourly_costs.values())
        assert bases[("srv-a", "steady")].latency is not None


def _normal(b: drift.Baseline) -> tuple[Any, ...]:
    return (b.hours, b.calls, b.executed, b.errors, b.denied, b.hourly_calls, dict(b.hourly_costs), b.latency)


async def test_postgres_quantile_equals_python(fresh_db_url: str) -> None:
    """sealtrail_hist_quantile (migration 0013, behind the stored hourly p95) gives the float that
    sealtrail.core.histogram.percentile gives, for random histograms and quantiles."""
    await migrate_url(fresh_db_url)
    rnd = random.Random(13)
    cases = [([rnd.choice([0, 0, 0, 1, 2, 7, rnd.randrange(10**6)]) for _ in range(histogram.BUCKETS)],
              rnd.choice([0.5, 0.95, 0.99, 1.0, rnd.random() or 0.5])) for _ in range(500)]
    cases += [(histogram.empty(), 0.95), ([0] * histogram.LAST + [3], 0.95), ([5] + [0] * histogram.LAST, 0.95)]
    conn = await asyncpg.connect(fresh_db_url)
    try:
        got = await conn.fetch("SELECT sealtrail_hist_quantile(h, q) AS v FROM unnest($1::text[], $2::float8[])"
                               " AS u(t, q), LATERAL (SELECT t::bigint[] AS h) x",
                               ["{" + ",".join(map(str, h)) + "}" for h, _ in cases], [q for _, q in cases])
    finally:
        await conn.close()
    assert [r["v"] for r in got] == [histogram.percentile(h, q) for h, q in cases]


async def test_series_refuses_an_agent_with_a_server_or_tool(both: tuple[QueryBackend, QueryBackend]) -> None:
    """A series is of an agent or of a server/tool, not both; a window past 400 days is refused."""
    pg, _ = both
    await pg.tenant("acme")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=_app(pg)), base_url="http://q") as client:
        r = await client.get("/v1/analytics/series", params={"agent_id": "agent-1", "tool_name": "steady"})
        assert r.status_code == 400 and r.json()["pointer"] == "query:agent_id", r.text
        assert "not both" in r.json()["detail"]
        r = await client.get("/v1/analytics/series", params={"from": "2020-01-01T00:00:00Z"})
        assert r.status_code == 400 and "400 days" in r.json()["detail"]
        r = await client.get("/v1/analytics/series", params={"agent_id": "agent-1"})
        assert r.status_code == 200 and len(r.json()["points"]) == 24 and r.json()["bucket_hours"] == 1
