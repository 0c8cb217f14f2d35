"""The analytics endpoints on real PostgreSQL, behind real API keys: figures, windows, scopes,
and tenant isolation enforced by row-level security."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from sealtrail.infra.auth import Role
from sealtrail.infra.postgres import migrate_url
from services.projector.ports import READ_MODELS
from services.projector.postgres import PostgresProjectorStore
from services.projector.projector import Projector
from tests.support.analytics import analytics_app, append, call, def_hash, provision, rate_limit, tool_list

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
WINDOW = {"from": "2025-03-03T09:00:00Z", "to": "2025-03-03T11:00:00Z"}


@pytest.fixture
async def pool(fresh_db_url: str) -> AsyncIterator[asyncpg.Pool]:
    await migrate_url(fresh_db_url)
    p = await asyncpg.create_pool(fresh_db_url, min_size=1, max_size=4)
    try:
        yield p
    finally:
        await p.close()


async def seed(pool: asyncpg.Pool) -> dict[str, str]:
    """acme: a busy db.query and a quiet web.get; beta: one call of its own tool."""
    tokens = await provision(pool, "acme", "beta")
    tokens["acme-gateway"] = (await provision_key(pool, "acme", Role.GATEWAY))
    m = lambda n: T0 + timedelta(minutes=n)  # noqa: E731
    h1, h2 = def_hash("v1"), def_hash("v2")
    acme = [tool_list("acme", m(0), server="srv-db", tools={"db.query": h1})]
    acme += [call("acme", m(i), latency_ms=100, cost_micros=250, def_hash=h1) for i in range(1, 11)]
    acme += [call("acme", m(20), status="error", latency_ms=3000), call("acme", m(21), status="timeout")]
    acme += [call("acme", m(22), decision="deny", status="denied", latency_ms=None),
             call("acme", m(23), decision="step_up", status="pending", latency_ms=None)]
    acme += [call("acme", m(70 + i), tool="web.get", server="srv-web", agent="agent-2") for i in range(5)]
    acme += [rate_limit("acme", m(80), limit_id="per-agent", observed=130),
             rate_limit("acme", m(81), limit_id="per-agent", observed=150),
             tool_list("acme", m(90), server="srv-db", tools={"db.query": h2})]
    acme += [call("acme", T0 - timedelta(days=2), tool="db.old")]  # outside the window
    await append(pool, "acme", acme)
    await append(pool, "beta", [call("beta", m(5), tool="beta.tool", server="srv-beta", agent="agent-b")])
    await Projector(store=PostgresProjectorStore(pool=pool)).catch_up()
    return tokens


async def provision_key(pool: asyncpg.Pool, tenant: str, role: Role) -> str:
    from sealtrail.infra.apikeys import KeyAdmin
    from sealtrail.infra.auth_postgres import PostgresAuthStore

    return (await KeyAdmin(store=PostgresAuthStore(pool=pool)).create_key(tenant=tenant, role=role)).token


async def get(pool: asyncpg.Pool, path: str, token: str | None, **params: Any) -> httpx.Response:
    app = analytics_app(pool, now=T0 + timedelta(hours=1, minutes=30))
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://q") as client:
        return await client.get(path, params=params, headers=headers)


async def test_tool_agent_and_server_figures(pool: asyncpg.Pool) -> None:
    """Calls, rates, latency percentiles and cost per tool, agent and server over the window."""
    tokens = await seed(pool)
    r = await get(pool, "/v1/analytics/tools", tokens["acme"], **WINDOW)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["window"] == {"from": "2025-03-03T09:00:00Z", "to": "2025-03-03T11:00:00Z"}
    db, web = body["tools"]
    assert (db["server_id"], db["tool_name"], web["tool_name"]) == ("srv-db", "db.query", "web.get")
    assert (db["calls"], db["ok"], db["errors"], db["executed"]) == (14, 10, 2, 12)
    assert db["success_rate"] == pytest.approx(10 / 12, abs=1e-6)
    assert (db["deny_rate"], db["step_up_rate"]) == (pytest.approx(1 / 14, abs=1e-6), pytest.approx(1 / 14, abs=1e-6))
    lat = db["latency_ms"]
    assert lat["samples"] == 12 and 100 / 1.42 <= lat["p50"] <= 100 * 1.42 and lat["p99"] >= 1000
    assert db["cost"] == [{"currency": "USD", "micros": 2500}]
    agents = (await get(pool, "/v1/analytics/agents", tokens["acme"], **WINDOW)).json()["agents"]
    assert [(a["agent_id"], a["calls"]) for a in agents] == [("agent-1", 14), ("agent-2", 5)]
    servers = (await get(pool, "/v1/analytics/servers", tokens["acme"], **WINDOW)).json()["servers"]
    assert [(s["server_id"], s["calls"]) for s in servers] == [("srv-db", 14), ("srv-web", 5)]
    wide = (await get(pool, "/v1/analytics/tools", tokens["acme"], **{"from": "2025-02-01T00:00:00Z",
                                                                       "to": WINDOW["to"]})).json()
    assert sum(t["calls"] for t in wide["tools"]) == 20  # whole days come from the daily rollup
    default = (await get(pool, "/v1/analytics/tools", tokens["acme"])).json()
    assert default["window"]["to"] == "2025-03-03T11:00:00Z" and len(default["tools"]) == 2


async def test_rate_limits_first_use_and_stale_definitions(pool: asyncpg.Pool) -> None:
    """Rate-limit counts per limit; first uses inside the window only; an agent whose last call saw
    the old definition of a tool is reported once that definition changed."""
    tokens = await seed(pool)
    limits = (await get(pool, "/v1/analytics/rate-limits", tokens["acme"], **WINDOW)).json()["limits"]
    assert [(x["limit_id"], x["events"], x["max_observed"], x["agent_id"]) for x in limits] == [
        ("per-agent", 2, 150, "agent-1")]
    first = (await get(pool, "/v1/analytics/first-use", tokens["acme"], **WINDOW)).json()["first_uses"]
    assert [(f["agent_id"], f["tool_name"], f["index"]) for f in first] == [
        ("agent-1", "db.query", 1), ("agent-2", "web.get", 15)]
    only = (await get(pool, "/v1/analytics/first-use", tokens["acme"], agent_id="agent-2", **WINDOW)).json()
    assert [f["tool_name"] for f in only["first_uses"]] == ["web.get"]
    stale = (await get(pool, "/v1/analytics/definition-changes", tokens["acme"])).json()["stale"]
    assert [(s["agent_id"], s["tool_name"], s["used_hash"], s["current_hash"], s["change"]) for s in stale] == [
        ("agent-1", "db.query", def_hash("v1"), def_hash("v2"), "changed")]


async def test_tenants_see_only_their_own_numbers(pool: asyncpg.Pool, fresh_db_url: str) -> None:
    """Tenant B's key sees none of tenant A's figures on any endpoint, and the reader role with
    tenant B set sees no row of A in any read model."""
    tokens = await seed(pool)
    tools = (await get(pool, "/v1/analytics/tools", tokens["beta"], **WINDOW)).json()["tools"]
    assert [(t["tool_name"], t["calls"]) for t in tools] == [("beta.tool", 1)]
    for path in ("rate-limits", "definition-changes"):
        body = (await get(pool, f"/v1/analytics/{path}", tokens["beta"], **WINDOW)).json()
        assert all(v == [] for k, v in body.items() if isinstance(v, list)), (path, body)
    first = (await get(pool, "/v1/analytics/first-use", tokens["beta"], **WINDOW)).json()["first_uses"]
    assert [f["agent_id"] for f in first] == ["agent-b"]
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL ROLE sealtrail_reader")
        await conn.execute("SELECT set_config('sealtrail.tenant', 'beta', true)")
        for table in READ_MODELS:
            assert await conn.fetchval(f"SELECT count(*) FROM {table} WHERE tenant_id <> 'beta'") == 0, table
        assert await conn.fetchval("SELECT count(*) FROM rollup_hourly") > 0


async def test_keys_without_the_scope_and_bad_input_are_refused(pool: asyncpg.Pool) -> None:
    """No key: 401; a gateway key (no analytics:read): 403; a bad time: 400, all as problem details."""
    tokens = await seed(pool)
    assert (await get(pool, "/v1/analytics/tools", None)).status_code == 401
    denied = await get(pool, "/v1/analytics/drift", tokens["acme-gateway"])
    assert denied.status_code == 403 and denied.headers["content-type"] == "application/problem+json"
    bad = await get(pool, "/v1/analytics/agents", tokens["acme"], **{"from": "last tuesday"})
    assert bad.status_code == 400 and "from" in bad.json()["detail"]
    reversed_ = await get(pool, "/v1/analytics/servers", tokens["acme"], **{"from": WINDOW["to"], "to": WINDOW["from"]})
    assert reversed_.status_code == 400
