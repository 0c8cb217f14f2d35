""":class:`~services.query.ports.AnalyticsReader` over the embedded SQLite database.

SQLite has no row-level security: every query below names the tenant (``tenant_id = ?``) and
that filter is the only barrier between tenants. Histograms are JSON arrays, merged in Python
by :class:`~services.query.ports.CallTotals` (the same code sums PostgreSQL's rows), so
the figures equal PostgreSQL's for the same entries. Reads run in one read transaction each.
"""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from datetime import datetime
from typing import Any

import orjson

from sealtrail.infra.sqlite import SqliteDatabase, from_db_time, to_db_time, translated
from services.query import analytics_sql, drift
from services.query.drift import Baseline
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

_COUNTERS = ", ".join(analytics_sql.COUNTERS)
_TIMES = frozenset({"bucket", "first_hour", "last_hour", "first_used_at", "occurred_at", "last_used_at",
                    "changed_at"})


def _row(names: list[str], values: tuple[Any, ...]) -> dict[str, Any]:
    out = dict(zip(names, values, strict=True))
    for k in _TIMES.intersection(out):
        if out[k] is not None:
            out[k] = from_db_time(out[k])
    if "hist" in out:
        out["hist"] = orjson.loads(out["hist"])
    return out


def _ranges(window: Window) -> list[tuple[str, str, bool]]:
    """(start, end, daily) of each part of the window: the ends hourly, whole days daily."""
    parts = split(window)
    out = [(to_db_time(a), to_db_time(b), False) for a, b in parts.hour_ranges]
    if parts.day_range is not None:
        out.append((to_db_time(parts.day_range[0]), to_db_time(parts.day_range[1]), True))
    return out


class SqliteAnalyticsReader:
    """Tenant-scoped reads of the read models of SQLite migration 0004."""

    def __init__(self, *, db: SqliteDatabase) -> None:
        self._db = db

    async def _fetch(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        def run(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            cur = conn.execute(sql, args)
            names = [d[0] for d in cur.description]
            return [_row(names, r) for r in cur]

        with translated("read analytics"):
            return await self._db.read(run)

    async def call_totals(self, tenant: str, grouping: Grouping, window: Window
                          ) -> dict[tuple[str, ...], CallTotals]:
        columns = GROUP_COLUMNS[grouping]
        hourly, daily = GROUP_TABLES[grouping]
        out: dict[tuple[str, ...], CallTotals] = {}
        for start, end, is_daily in _ranges(window):
            sql = (f"SELECT {', '.join(columns)}, currency, {_COUNTERS}, cost_micros AS cost,"
                   f" latency_hist AS hist FROM {daily if is_daily else hourly}"
                   " WHERE tenant_id = ? AND bucket >= ? AND bucket < ?")
            for row in await self._fetch(sql, tenant, start, end):
                out.setdefault(tuple(row[c] for c in columns), CallTotals()).add(row)
        return out

    async def tool_hours(self, tenant: str, window: Window) -> dict[ToolKey, dict[datetime, CallTotals]]:
        sql = analytics_sql.tool_hours(analytics_sql.SQLITE)
        out: dict[ToolKey, dict[datetime, CallTotals]] = {}
        for row in await self._fetch(sql, tenant, to_db_time(window.start), to_db_time(window.end)):
            hours = out.setdefault((row["server_id"], row["tool_name"]), {})
            hours.setdefault(row["bucket"], CallTotals()).add(row)
        return out

    async def drift_baseline(self, tenant: str, window: Window, min_timed: int) -> dict[ToolKey, Baseline]:
        """From the rows of every currency together; each hour's p95 from its histogram, here."""
        args = (tenant, to_db_time(window.start), to_db_time(window.end))
        hours = await self._fetch(_MERGED_HOURS_SQL, *args)
        costs: dict[ToolKey, dict[str, list[int]]] = {}
        for r in await self._fetch(_COSTED_HOURS_SQL, *args):
            costs.setdefault((r["server_id"], r["tool_name"]), {}).setdefault(r["currency"], []).append(r["cost"])
        stats: dict[ToolKey, list[drift.HourStats]] = {}
        for r in hours:
            stats.setdefault((r["server_id"], r["tool_name"]), []).append(
                drift.HourStats(r["calls"], r["executed"], r["errors"], r["denied"], r["hist"]))
        limits = drift.Thresholds(min_latency_samples=min_timed)
        return {tool: replace(drift.summarize(window.hours, hs, limits), hourly_costs={
                    cur: drift.Moments.of(v) for cur, v in costs.get(tool, {}).items()})
                for tool, hs in stats.items()}

    async def series(self, tenant: str, window: Window, of: SeriesOf, *, daily: bool
                     ) -> dict[datetime, CallTotals]:
        table, where, values = analytics_sql.series_rows(analytics_sql.SQLITE, of, daily=daily)
        sql = (f"SELECT bucket, currency, {_COUNTERS}, cost_micros AS cost, latency_hist AS hist"
               f" FROM {table} WHERE {where}")
        out: dict[datetime, CallTotals] = {}
        for row in await self._fetch(sql, tenant, to_db_time(window.start), to_db_time(window.end), *values):
            out.setdefault(row["bucket"], CallTotals()).add(row)
        return out

    async def rate_limits(self, tenant: str, window: Window, limit: int) -> list[RateLimitTotals]:
        sql = analytics_sql.rate_limits(analytics_sql.SQLITE)
        rows = await self._fetch(sql, tenant, to_db_time(window.start), to_db_time(window.end), limit)
        return [RateLimitTotals(**r) for r in rows]

    async def first_uses(self, tenant: str, window: Window, agent_id: str | None, limit: int
                         ) -> list[FirstUse]:
        sql = analytics_sql.first_uses(analytics_sql.SQLITE)
        rows = await self._fetch(sql, tenant, to_db_time(window.start), to_db_time(window.end), agent_id, limit)
        return [FirstUse(**r) for r in rows]

    async def definition_changes(self, tenant: str, window: Window, limit: int) -> list[DefinitionChange]:
        sql = analytics_sql.definition_changes(analytics_sql.SQLITE)
        rows = await self._fetch(sql, tenant, to_db_time(window.start), to_db_time(window.end), limit)
        return [DefinitionChange(**r) for r in rows]

    async def stale_definitions(self, tenant: str, agent_id: str | None, limit: int
                                ) -> list[StaleDefinition]:
        rows = await self._fetch(_STALE_SQL, tenant, agent_id, limit)
        return [StaleDefinition(**r) for r in rows]


_MERGED_HOURS_SQL = ("SELECT server_id, tool_name, calls, executed, errors, denied, latency_hist AS hist"
                     " FROM rollup_tool_hourly_merged WHERE tenant_id = ? AND bucket >= ? AND bucket < ?")
_COSTED_HOURS_SQL = ("SELECT server_id, tool_name, currency, cost_micros AS cost FROM rollup_tool_hourly"
                     " WHERE tenant_id = ? AND bucket >= ? AND bucket < ? AND currency <> ''")

# As PostgreSQL's query (analytics_store._STALE_SQL), with a window function for the lateral join.
_STALE_SQL = """
WITH latest AS (
    SELECT server_id, tool_name, change, new_hash, occurred_at,
           row_number() OVER (PARTITION BY server_id, tool_name ORDER BY log_id DESC, idx DESC) AS rn
      FROM tool_definition_changes WHERE tenant_id = ?1)
SELECT u.agent_id, u.server_id, u.tool_name, u.last_used_at, u.def_hash AS used_hash,
       c.new_hash AS current_hash, c.change, c.occurred_at AS changed_at
  FROM tool_usage u
  JOIN latest c ON c.server_id = u.server_id AND c.tool_name = u.tool_name AND c.rn = 1
 WHERE u.tenant_id = ?1 AND (?2 IS NULL OR u.agent_id = ?2)
   AND (c.change = 'removed'
        OR (u.def_hash IS NOT NULL AND c.new_hash <> u.def_hash)
        OR (u.def_hash IS NULL AND c.change = 'changed' AND c.occurred_at > u.last_used_at))
 ORDER BY c.occurred_at DESC, u.agent_id, u.server_id, u.tool_name
 LIMIT ?3
"""
