"""Drift on real PostgreSQL: a 50x call spike and a changed tool definition are reported, a steady
tool is not."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest

from sealtrail.core.record import SealedRecord
from sealtrail.infra.postgres import migrate_url
from services.projector.postgres import PostgresProjectorStore
from services.projector.projector import Projector
from tests.support.analytics import analytics_app, append, call, def_hash, provision, tool_list

END = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
BASELINE_START = END - timedelta(days=7, hours=1)


@pytest.fixture
async def pool(fresh_db_url: str) -> AsyncIterator[asyncpg.Pool]:
    await migrate_url(fresh_db_url)
    p = await asyncpg.create_pool(fresh_db_url, min_size=1, max_size=4)
    try:
        yield p
    finally:
        await p.close()


def hourly_calls(tool: str, counts: list[int], rnd: random.Random) -> list[SealedRecord]:
    """``counts[i]`` calls of ``tool`` in hour i from the baseline's start, spread over the hour."""
    return [call("acme", BASELINE_START + timedelta(hours=h, seconds=rnd.randrange(3600)), tool=tool,
                 server="srv-a", session=None, latency_ms=rnd.choice([40, 50, 60]),
                 status="error" if rnd.random() < 0.02 else "ok")
            for h, n in enumerate(counts) for _ in range(n)]


async def test_spike_and_definition_change_are_reported_steady_tool_is_not(pool: asyncpg.Pool) -> None:
    """A tool at 50x its baseline rate in the last hour is flagged on call rate; a definition that
    changed three hours ago is listed; a tool with steady noisy traffic raises nothing."""
    tokens = await provision(pool, "acme")
    rnd = random.Random(3)
    hours = 7 * 24
    records = hourly_calls("spiky", [10] * hours + [500], rnd)
    records += hourly_calls("steady", [rnd.randint(22, 38) for _ in range(hours + 1)], rnd)
    records += [tool_list("acme", BASELINE_START, server="srv-a",
                          tools={"spiky": def_hash("1"), "steady": def_hash("1")}),
                tool_list("acme", END - timedelta(hours=3), server="srv-a",
                          tools={"spiky": def_hash("2"), "steady": def_hash("1")})]
    await append(pool, "acme", sorted(records, key=lambda r: r.header["occurred_at"]))
    await Projector(store=PostgresProjectorStore(pool=pool)).catch_up()

    app = analytics_app(pool, now=END + timedelta(minutes=20))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://q") as client:
        r = await client.get("/v1/analytics/drift", headers={"Authorization": f"Bearer {tokens['acme']}"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["recent"] == {"from": "2025-03-10T11:00:00Z", "to": "2025-03-10T12:00:00Z"}
    assert body["baseline"]["from"] == "2025-03-03T11:00:00Z"
    assert body["tools_evaluated"] == 2
    flagged = {(f["tool_name"], f["metric"]): f for f in body["findings"]}
    assert set(flagged) == {("spiky", "call_rate")}
    spike = flagged[("spiky", "call_rate")]
    assert (spike["baseline"], spike["recent"], spike["ratio"]) == (10, 500, 50)
    assert [(c["tool_name"], c["change"], c["old_hash"], c["new_hash"]) for c in body["definition_changes"]] == [
        ("spiky", "changed", def_hash("1"), def_hash("2"))]
