"""The analytics statements both adapters run, written once for PostgreSQL's and SQLite's dialects.

The read models have the same tables and columns on both databases (migration 0004), so a statement
differs only in its placeholders (``$1`` or ``?1``) and in PostgreSQL's casts. Statements whose
plans differ (the windowed sums, stale definitions) stay in their adapters.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.query.ports import SeriesOf

COUNTERS = ("calls", "ok", "errors", "executed", "denied", "step_up", "latency_n", "latency_sum")


@dataclass(frozen=True, slots=True)
class Dialect:
    """Numbered placeholders (``$`` or ``?``) and the casts a dialect needs."""

    mark: str
    bigint: str = ""
    text: str = ""

    def p(self, n: int) -> str:
        return f"{self.mark}{n}"


POSTGRES = Dialect("$", bigint="::bigint", text="::text")
SQLITE = Dialect("?")


def tool_hours(d: Dialect) -> str:
    """Each tool's hourly rollup rows in a window: $1 tenant, $2..$3 the window."""
    return (f"SELECT server_id, tool_name, bucket, currency, {', '.join(COUNTERS)}, cost_micros AS cost,"
            f" latency_hist AS hist FROM rollup_tool_hourly"
            f" WHERE tenant_id = {d.p(1)} AND bucket >= {d.p(2)} AND bucket < {d.p(3)}")


def rate_limits(d: Dialect) -> str:
    """Rate-limit events per limit and scope in a window, most frequent first: $4 the limit."""
    return (f"SELECT limit_id, scope, agent_id, server_id, tool_name, sum(events){d.bigint} AS events,"
            " max(max_observed) AS max_observed, max(max_limit) AS max_limit,"
            " max(max_window_s) AS max_window_s, min(bucket) AS first_hour, max(bucket) AS last_hour"
            f" FROM rollup_rate_limits WHERE tenant_id = {d.p(1)} AND bucket >= {d.p(2)} AND bucket < {d.p(3)}"
            " GROUP BY limit_id, scope, agent_id, server_id, tool_name"
            f" ORDER BY events DESC, limit_id, scope, agent_id, server_id, tool_name LIMIT {d.p(4)}")


def first_uses(d: Dialect) -> str:
    """First uses of a tool by an agent in a window: $4 the agent or NULL, $5 the limit."""
    return ("SELECT agent_id, server_id, tool_name, first_used_at, first_log_id AS log_id,"
            ' first_idx AS "index", calls FROM tool_usage'
            f" WHERE tenant_id = {d.p(1)} AND first_used_at >= {d.p(2)} AND first_used_at < {d.p(3)}"
            f" AND ({d.p(4)}{d.text} IS NULL OR agent_id = {d.p(4)})"
            f" ORDER BY first_used_at, agent_id, server_id, tool_name LIMIT {d.p(5)}")


def definition_changes(d: Dialect) -> str:
    """Tool definition changes in a window; a server's first snapshot is discovery, not a change."""
    return ('SELECT server_id, tool_name, change, old_hash, new_hash, occurred_at, log_id, idx AS "index"'
            " FROM tool_definition_changes c"
            f" WHERE tenant_id = {d.p(1)} AND occurred_at >= {d.p(2)} AND occurred_at < {d.p(3)}"
            " AND (change <> 'added' OR EXISTS (SELECT 1 FROM tool_definition_changes p"
            "      WHERE p.tenant_id = c.tenant_id AND p.server_id = c.server_id"
            "      AND (p.log_id, p.idx) < (c.log_id, c.idx)))"
            f" ORDER BY occurred_at, log_id, idx, server_id, tool_name LIMIT {d.p(4)}")


def series_rows(d: Dialect, of: SeriesOf, *, daily: bool) -> tuple[str, str, list[str]]:
    """The rollup table, the WHERE clause and its filter values of a time series' rows: $1 tenant,
    $2..$3 the window, then one placeholder per filter that ``of`` sets. Every call hour by hour
    comes from the tenant rollup (migration 0014); by day, from the daily tool rollup."""
    if of.agent_id is not None:
        table, filters = "rollup_agent", [("agent_id", of.agent_id)]
    elif of.server_id is None and of.tool_name is None and not daily:
        table, filters = "rollup_tenant", []  # every call: one row per hour and currency
    else:
        table = "rollup_tool"
        filters = [(c, v) for c, v in (("server_id", of.server_id), ("tool_name", of.tool_name)) if v is not None]
    where = [f"tenant_id = {d.p(1)}", f"bucket >= {d.p(2)}", f"bucket < {d.p(3)}"]
    where += [f"{column} = {d.p(n)}" for n, (column, _) in enumerate(filters, start=4)]
    return f"{table}_{'daily' if daily else 'hourly'}", " AND ".join(where), [v for _, v in filters]
