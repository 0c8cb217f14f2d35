"""PostgreSQL reduces a drift baseline to one row per tool (sums, the exact sums of squares of the
hourly calls and costs, the hourly p95s): the reader's Baseline equals, float for float, drift.summarize
of the same hours in Python (odd and even numbers of timed hours, ties, sub-millisecond centres,
sums of squares past 2**63)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import asyncpg

from sealtrail.core import histogram
from sealtrail.infra.postgres import migrate_url
from services.query import drift
from services.query.postgres.analytics import PostgresAnalyticsReader
from services.query.windows import Window

END = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
HOURS = 168
WINDOW = Window(END - timedelta(hours=HOURS), END)
MIN_TIMED = 10
_MERGED = ("INSERT INTO rollup_tool_hourly_merged (tenant_id, bucket, server_id, tool_name, calls, ok, errors,"
           " executed, denied, step_up, latency_n, latency_sum, latency_hist)"
           " VALUES ('acme', $1, 's', $2, $3, 0, $4, $5, $6, 0, $7, 0, $8)")
_COSTS = ("INSERT INTO rollup_tool_hourly (tenant_id, bucket, server_id, tool_name, currency, calls, ok, errors,"
          " executed, denied, step_up, latency_n, latency_sum, latency_hist, cost_micros)"
          " VALUES ('acme', $1, 's', $2, $3, 1, 0, 0, 0, 0, 0, 0, 0, $4, $5)")


def _hist(rnd: random.Random, shapes: list[list[int]], top: int) -> list[int]:
    """A histogram from a few shared shapes (equal p95s, so ties) or a fresh random one in the
    buckets below ``top`` (1: only sub-millisecond calls, p95 0, a centre of 1 ms); some hours have
    fewer than MIN_TIMED timed calls."""
    if rnd.random() < 0.3:
        return rnd.choice(shapes)
    h = histogram.empty()
    for _ in range(rnd.randrange(0, 12)):
        h[rnd.randrange(top)] += rnd.randrange(1, 30)
    return h


def _tools(rnd: random.Random) -> dict[str, list[tuple[datetime, drift.HourStats]]]:
    """Tools with 0 to 168 hours each, odd and even counts of timed hours, and costs big enough
    that their sum of squares passes 2**63."""
    shapes = [[rnd.randrange(5) for _ in range(histogram.BUCKETS)] for _ in range(3)]
    out: dict[str, list[tuple[datetime, drift.HourStats]]] = {}
    for t in range(80):
        n = rnd.choice([1, 2, 3, 4, rnd.randrange(1, HOURS + 1), HOURS])
        hours = sorted(rnd.sample(range(HOURS), n))
        top = rnd.choice([1, 3, 12, histogram.BUCKETS])
        out[f"tool-{t}"] = []
        for h in hours:
            calls = rnd.randrange(0, 10**rnd.randrange(1, 7))
            executed = rnd.randrange(calls + 1)
            costs = {c: rnd.randrange(10**rnd.randrange(1, 16)) for c in rnd.sample(["EUR", "USD"], rnd.randrange(3))}
            errors, denied = rnd.randrange(executed + 1), rnd.randrange(calls + 1)
            out[f"tool-{t}"].append((WINDOW.start + timedelta(hours=h), drift.HourStats(
                calls, executed, errors, denied, _hist(rnd, shapes, top), costs)))
    return out


async def test_postgres_baseline_equals_python_summary(fresh_db_url: str) -> None:
    await migrate_url(fresh_db_url)
    tools = _tools(random.Random(18))
    conn = await asyncpg.connect(fresh_db_url)
    try:
        await conn.executemany(_MERGED, [(at, tool, s.calls, s.errors, s.executed, s.denied, sum(s.hist),
                                          list(s.hist)) for tool, hours in tools.items() for at, s in hours])
        await conn.executemany(_COSTS, [(at, tool, cur, histogram.empty(), v) for tool, hours in tools.items()
                                        for at, s in hours for cur, v in s.costs.items()])
    finally:
        await conn.close()
    pool = await asyncpg.create_pool(fresh_db_url, min_size=1, max_size=2)
    assert pool is not None
    try:
        got = await PostgresAnalyticsReader(pool=pool).drift_baseline("acme", WINDOW, MIN_TIMED)
    finally:
        await pool.close()
    limits = drift.Thresholds(min_latency_samples=MIN_TIMED)
    want = {("s", tool): drift.summarize(HOURS, [s for _, s in hours], limits) for tool, hours in tools.items()}
    assert got == want
    spreads = [b.latency for b in want.values()]
    assert None in spreads and any(s is not None and s[0] == 1.0 for s in spreads)
    assert any(m.sum_sq >= 2**63 for b in want.values() for m in b.hourly_costs.values())
