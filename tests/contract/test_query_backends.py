"""The same entries, written by each backend's ledger store and projected by each backend's
projector, give the same analytics and drift figures on SQLite as on PostgreSQL."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from sealtrail.core.record import SealedRecord
from sealtrail.infra.auth import Principal, Role
from sealtrail.infra.problems import install_problem_handlers
from services.projector.projector import Projector
from services.query import analytics
from tests.support.analytics import call, def_hash, rate_limit, tool_list
from tests.support.query_backends import QueryBackend, postgres_query_backend, sqlite_query_backend

END = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
START = END - timedelta(days=7)
PATHS = ("/v1/analytics/tools", "/v1/analytics/agents", "/v1/analytics/servers", "/v1/analytics/rate-limits",
         "/v1/analytics/first-use", "/v1/analytics/definition-changes", "/v1/analytics/drift")


def _records(tenant: str) -> list[SealedRecord]:
    """A week of hourly traffic: a tool that spikes in the last hour, a steady noisy one with errors,
    denials, costs and two agents, rate limits, and a definition change three hours before the end."""
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
                            cost_micros=rnd.randint(0, 999)))
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
