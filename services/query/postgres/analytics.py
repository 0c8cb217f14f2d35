""":class:`~services.query.ports.AnalyticsReader` in PostgreSQL over the projector's read models.

Every read runs in a read-only transaction as the ``sealtrail_reader`` role with
``sealtrail.tenant`` set, so row-level security, not this code, keeps tenants apart; the
explicit ``tenant_id = $1`` filters only help the planner. asyncpg errors are translated here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import asyncpg

from sealtrail.core import histogram
from sealtrail.infra.pgerrors import translated
from sealtrail.infra.postgres import Conn
from services.query import analytics_sql
from services.query.drift import Baseline, Moments, latency_spread
from services.query.ports import (
    GROUP_COLUMNS,
    GROUP_TABLES,
    CallTotals,
    DefinitionChange,
    FirstUse,
    Grouping,
    RateLimitTotals,
    SeriesOf,
    StaleDefinition,
    ToolKey,
)
from services.query.windows import Window, split

_COUNTERS = analytics_sql.COUNTERS
_HIST = "ARRAY[" + ", ".join(f"sum(latency_hist[{i + 1}])" for i in range(histogram.BUCKETS)) + "]::bigint[]"
_SUMS = (", ".join(f"sum({c})::bigint AS {c}" for c in _COUNTERS)
         + f", sum(cost_micros)::bigint AS cost, {_HIST} AS hist")


def _window_args(window: Window) -> list[datetime]:
    """$2..$7: two hourly ranges and one daily range; unused ranges are empty."""
    parts = split(window)
    hours = list(parts.hour_ranges) + [(window.start, window.start)] * (2 - len(parts.hour_ranges))
    days = parts.day_range or (window.start, window.start)
    return [hours[0][0], hours[0][1], hours[1][0], hours[1][1], days[0], days[1]]


def totals_sql(grouping: Grouping) -> str:
    """Sums per group over a window: whole days from the daily rollup, the ends from the hourly one."""
    cols = ", ".join(GROUP_COLUMNS[grouping])
    hourly, daily = GROUP_TABLES[grouping]
    return (
        f"SELECT {cols}, currency, {_SUMS} FROM ("
        f" SELECT * FROM {hourly} WHERE tenant_id = $1"
        "  AND ((bucket >= $2 AND bucket < $3) OR (bucket >= $4 AND bucket < $5))"
        f" UNION ALL SELECT * FROM {daily} WHERE tenant_id = $1 AND bucket >= $6 AND bucket < $7) r"
        f" GROUP BY {cols}, currency"
    )


class PostgresAnalyticsReader:
    """:class:`AnalyticsReader` over the tables of migration 0004."""

    def __init__(self, *, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @asynccontextmanager
    async def _as_tenant(self, tenant: str) -> AsyncIterator[Conn]:
        with translated("read analytics"):
            async with self._pool.acquire() as conn, conn.transaction(readonly=True):
                await conn.execute("SELECT set_config('role', 'sealtrail_reader', true),"
                                   " set_config('sealtrail.tenant', $1, true)", tenant)
                yield conn

    async def _fetch(self, tenant: str, sql: str, *args: Any) -> list[asyncpg.Record]:
        async with self._as_tenant(tenant) as conn:
            return list(await conn.fetch(sql, tenant, *args))

    async def call_totals(self, tenant: str, grouping: Grouping, window: Window
                          ) -> dict[tuple[str, ...], CallTotals]:
        columns = GROUP_COLUMNS[grouping]
        out: dict[tuple[str, ...], CallTotals] = {}
        for row in await self._fetch(tenant, totals_sql(grouping), *_window_args(window)):
            out.setdefault(tuple(row[c] for c in columns), CallTotals()).add(row)
        return out

    async def tool_hours(self, tenant: str, window: Window) -> dict[ToolKey, dict[datetime, CallTotals]]:
        sql = analytics_sql.tool_hours(analytics_sql.POSTGRES)
        out: dict[ToolKey, dict[datetime, CallTotals]] = {}
        for row in await self._fetch(tenant, sql, window.start, window.end):
            hours = out.setdefault((row["server_id"], row["tool_name"]), {})
            hours.setdefault(row["bucket"], CallTotals()).add(row)
        return out

    async def drift_baseline(self, tenant: str, window: Window, min_timed: int) -> dict[ToolKey, Baseline]:
        async with self._as_tenant(tenant) as conn:
            # 200 tools x 168 hours group best in a hash table (sorting 33,600 rows by name is 2-3x slower).
            await conn.execute("SELECT set_config('work_mem', '16MB', true), set_config('enable_sort', 'off', true)")
            tools = await conn.fetch(_BASELINE_SQL, tenant, window.start, window.end, min_timed)
            costs = await conn.fetch(_BASELINE_COSTS_SQL, tenant, window.start, window.end)
        hourly_costs: dict[ToolKey, dict[str, Moments]] = {}
        for r in costs:
            hourly_costs.setdefault((r["server_id"], r["tool_name"]), {})[r["currency"]] = Moments(
                int(r["sum"]), int(r["sum_sq"]))
        return {(r["server_id"], r["tool_name"]): Baseline(
            window.hours, r["calls"], r["executed"], r["errors"], r["denied"],
            Moments(r["calls"], int(r["calls_sq"])), hourly_costs.get((r["server_id"], r["tool_name"]), {}),
            latency_spread(r["p95s"] or ()))
            for r in tools}

    async def series(self, tenant: str, window: Window, of: SeriesOf, *, daily: bool
                     ) -> dict[datetime, CallTotals]:
        table, where, values = analytics_sql.series_rows(analytics_sql.POSTGRES, of, daily=daily)
        sql = f"SELECT bucket, currency, {_SUMS} FROM {table} WHERE {where} GROUP BY bucket, currency"
        out: dict[datetime, CallTotals] = {}
        for row in await self._fetch(tenant, sql, window.start, window.end, *values):
            out.setdefault(row["bucket"], CallTotals()).add(row)
        return out

    async def rate_limits(self, tenant: str, window: Window, limit: int) -> list[RateLimitTotals]:
        sql = analytics_sql.rate_limits(analytics_sql.POSTGRES)
        return [RateLimitTotals(**dict(r)) for r in await self._fetch(tenant, sql, window.start, window.end,
                                                                      limit)]

    async def first_uses(self, tenant: str, window: Window, agent_id: str | None, limit: int
                         ) -> list[FirstUse]:
        sql = analytics_sql.first_uses(analytics_sql.POSTGRES)
        rows = await self._fetch(tenant, sql, window.start, window.end, agent_id, limit)
        return [FirstUse(**dict(r)) for r in rows]

    async def definition_changes(self, tenant: str, window: Window, limit: int) -> list[DefinitionChange]:
        sql = analytics_sql.definition_changes(analytics_sql.POSTGRES)
        rows = await self._fetch(tenant, sql, window.start, window.end, limit)
        return [DefinitionChange(**dict(r)) for r in rows]

    async def stale_definitions(self, tenant: str, agent_id: str | None, limit: int
                                ) -> list[StaleDefinition]:
        rows = await self._fetch(tenant, _STALE_SQL, agent_id, limit)
        return [StaleDefinition(**dict(r)) for r in rows]


# A tool's baseline from its rows of every currency together, one row per tool: sums, the exact sum
# of squares of the hourly calls (bigint products, summed as numeric: an hour would need 3 billion
# calls of one tool to overflow) and the p95 PostgreSQL stored for each hour (migration 0013).
# Costs per currency from the hours that carry one (a partial index), squared as numeric. The
# median and MAD of the p95s stay in Python: ordered-set aggregates need a sort by tool that costs
# several times the hash aggregate (measured at 200 tools x 168 hours: 75 ms against 20 ms).
_BASELINE_SQL = """
SELECT server_id, tool_name, sum(calls)::bigint AS calls, sum(executed)::bigint AS executed,
       sum(errors)::bigint AS errors, sum(denied)::bigint AS denied, sum(calls * calls) AS calls_sq,
       array_agg(latency_p95) FILTER (WHERE latency_n >= $4 AND latency_p95 IS NOT NULL) AS p95s
  FROM rollup_tool_hourly_merged WHERE tenant_id = $1 AND bucket >= $2 AND bucket < $3
 GROUP BY server_id, tool_name
"""

_BASELINE_COSTS_SQL = """
SELECT server_id, tool_name, currency, sum(cost_micros)::numeric AS sum,
       sum(cost_micros::numeric * cost_micros) AS sum_sq FROM rollup_tool_hourly
 WHERE tenant_id = $1 AND bucket >= $2 AND bucket < $3 AND currency <> ''
 GROUP BY server_id, tool_name, currency
"""


# For each (agent, tool) used: the tool's latest change in log order. Stale when the current
# definition differs from the hash the agent's latest call carried; when its calls carried no
# hash, when the definition changed after its last use; or when the tool has been removed.
_STALE_SQL = """
SELECT u.agent_id, u.server_id, u.tool_name, u.last_used_at, u.def_hash AS used_hash,
       c.new_hash AS current_hash, c.change, c.occurred_at AS changed_at
  FROM tool_usage u
  JOIN LATERAL (SELECT change, new_hash, occurred_at FROM tool_definition_changes c
                 WHERE c.tenant_id = u.tenant_id AND c.server_id = u.server_id AND c.tool_name = u.tool_name
                 ORDER BY c.log_id DESC, c.idx DESC LIMIT 1) c ON true
 WHERE u.tenant_id = $1 AND ($2::text IS NULL OR u.agent_id = $2)
   AND (c.change = 'removed'
        OR (u.def_hash IS NOT NULL AND c.new_hash <> u.def_hash)
        OR (u.def_hash IS NULL AND c.change = 'changed' AND c.occurred_at > u.last_used_at))
 ORDER BY c.occurred_at DESC, u.agent_id, u.server_id, u.tool_name
 LIMIT $3
"""
