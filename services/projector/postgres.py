""":class:`~services.projector.ports.ProjectorStore` in PostgreSQL, the database the ledger writes.

A batch is read from ``entries`` and its deltas written into the read-model tables in one
transaction with the log's progress row. Rows go in as column arrays through ``unnest`` and merge
into stored rows with sums, LEAST and GREATEST; text tie-breaks compare with ``COLLATE "C"``
(code-point order, as Python compares), so a row's final value never depends on batch boundaries.
asyncpg errors are translated once, in :class:`PostgresProjectorStore`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from sealtrail.core import signedview
from sealtrail.errors import SequenceGapError
from sealtrail.infra.pgerrors import translated
from sealtrail.infra.postgres import Conn
from services.projector.ports import (
    DEFAULT_BATCH_ENTRIES,
    MAX_EXAMPLES,
    READ_MODELS,
    VOLATILE_COLUMNS,
    BatchResult,
    EntryDisagreement,
    LogProgress,
    ModelDifference,
    ReadModelReport,
)
from services.projector.rollups import BatchDelta, CallStats, KeyUse, ProjectedEntry, RollupKey, aggregate
from services.projector.tooldefs import CurrentTool, ServerState, SnapshotResult, apply_snapshots

_HOURLY_SQL = """
INSERT INTO rollup_hourly AS r (tenant_id, bucket, server_id, tool_name, agent_id, decision, status, currency,
                                calls, errors, latency_n, latency_sum, latency_hist, cost_micros)
SELECT $1, u.bucket, u.server_id, u.tool_name, u.agent_id, u.decision, u.status, u.currency,
       u.calls, u.errors, u.latency_n, u.latency_sum, u.hist::bigint[], u.cost
  FROM unnest($2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
              $9::bigint[], $10::bigint[], $11::bigint[], $12::bigint[], $13::text[], $14::bigint[])
       AS u(bucket, server_id, tool_name, agent_id, decision, status, currency,
            calls, errors, latency_n, latency_sum, hist, cost)
ON CONFLICT (tenant_id, bucket, server_id, tool_name, agent_id, decision, status, currency) DO UPDATE SET
    calls = r.calls + EXCLUDED.calls,
    errors = r.errors + EXCLUDED.errors,
    latency_n = r.latency_n + EXCLUDED.latency_n,
    latency_sum = r.latency_sum + EXCLUDED.latency_sum,
    latency_hist = sealtrail_hist_add(r.latency_hist, EXCLUDED.latency_hist),
    cost_micros = r.cost_micros + EXCLUDED.cost_micros
"""

_COUNTERS = ("calls", "ok", "errors", "executed", "denied", "step_up", "latency_n", "latency_sum")


def _counters_sql(table: str, keys: tuple[str, ...], *, cost: bool = True) -> str:
    """Upsert of a narrow rollup (tool or agent, hourly or daily) from column arrays; without
    ``cost`` (a rollup of every currency together) there is no cost column."""
    n = len(keys)
    key_types = ["timestamptz"] + ["text"] * (n - 1)
    arrays = [f"${i + 2}::{t}[]" for i, t in enumerate(key_types + ["bigint"] * len(_COUNTERS))]
    arrays += [f"${n + len(_COUNTERS) + 2}::text[]"] + ([f"${n + len(_COUNTERS) + 3}::bigint[]"] if cost else [])
    names = [*keys, *_COUNTERS, "hist", *(["cost"] if cost else [])]
    merge = ", ".join(f"{c} = r.{c} + EXCLUDED.{c}" for c in (*_COUNTERS, *(["cost_micros"] if cost else [])))
    return (
        f"INSERT INTO {table} AS r (tenant_id, {', '.join(keys)}, {', '.join(_COUNTERS)}, latency_hist"
        f"{', cost_micros' if cost else ''}) SELECT $1, {', '.join(f'u.{k}' for k in keys)},"
        f" {', '.join(f'u.{c}' for c in _COUNTERS)}, u.hist::bigint[]{', u.cost' if cost else ''}"
        f" FROM unnest({', '.join(arrays)}) AS u({', '.join(names)})"
        f" ON CONFLICT (tenant_id, {', '.join(keys)}) DO UPDATE SET {merge},"
        " latency_hist = sealtrail_hist_add(r.latency_hist, EXCLUDED.latency_hist)"
    )


_TOOL_KEYS = ("bucket", "server_id", "tool_name", "currency")
_AGENT_KEYS = ("bucket", "agent_id", "currency")
_NARROW = {
    "rollup_tool_hourly": _counters_sql("rollup_tool_hourly", _TOOL_KEYS),
    "rollup_tool_daily": _counters_sql("rollup_tool_daily", _TOOL_KEYS),
    "rollup_agent_hourly": _counters_sql("rollup_agent_hourly", _AGENT_KEYS),
    "rollup_agent_daily": _counters_sql("rollup_agent_daily", _AGENT_KEYS),
    "rollup_tool_hourly_merged": _counters_sql("rollup_tool_hourly_merged", _TOOL_KEYS[:-1], cost=False),
    "rollup_tenant_hourly": _counters_sql("rollup_tenant_hourly", ("bucket", "currency")),
}

_RATE_SQL = """
INSERT INTO rollup_rate_limits AS r (tenant_id, bucket, limit_id, scope, agent_id, server_id, tool_name,
                                     events, max_observed, max_limit, max_window_s)
SELECT $1, u.* FROM unnest($2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                          $8::bigint[], $9::bigint[], $10::bigint[], $11::bigint[]) AS u
ON CONFLICT (tenant_id, bucket, limit_id, scope, agent_id, server_id, tool_name) DO UPDATE SET
    events = r.events + EXCLUDED.events,
    max_observed = GREATEST(r.max_observed, EXCLUDED.max_observed),
    max_limit = GREATEST(r.max_limit, EXCLUDED.max_limit),
    max_window_s = GREATEST(r.max_window_s, EXCLUDED.max_window_s)
"""

_SESSIONS_SQL = """
INSERT INTO sessions AS s (tenant_id, session_id, agent_id, log_id, first_at, last_at, first_idx, last_idx,
                           events, calls, errors, denials)
SELECT $1, u.* FROM unnest($2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::timestamptz[],
                          $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[], $11::bigint[],
                          $12::bigint[]) AS u
ON CONFLICT (tenant_id, session_id) DO UPDATE SET
    agent_id = LEAST(s.agent_id COLLATE "C", EXCLUDED.agent_id COLLATE "C"),
    first_at = LEAST(s.first_at, EXCLUDED.first_at),
    last_at = GREATEST(s.last_at, EXCLUDED.last_at),
    first_idx = LEAST(s.first_idx, EXCLUDED.first_idx),
    last_idx = GREATEST(s.last_idx, EXCLUDED.last_idx),
    events = s.events + EXCLUDED.events,
    calls = s.calls + EXCLUDED.calls,
    errors = s.errors + EXCLUDED.errors,
    denials = s.denials + EXCLUDED.denials
"""

_EARLIER = ("(EXCLUDED.first_used_at, EXCLUDED.first_log_id COLLATE \"C\", EXCLUDED.first_idx)"
            " < (u.first_used_at, u.first_log_id COLLATE \"C\", u.first_idx)")
_LATER_HASH = ("EXCLUDED.def_hash_at IS NOT NULL AND (u.def_hash_at IS NULL OR"
               " (EXCLUDED.def_hash_at, EXCLUDED.def_hash COLLATE \"C\")"
               " > (u.def_hash_at, u.def_hash COLLATE \"C\"))")
_USAGE_SQL = f"""
INSERT INTO tool_usage AS u (tenant_id, agent_id, server_id, tool_name, first_used_at, first_log_id,
                             first_idx, last_used_at, calls, def_hash, def_hash_at)
SELECT $1, v.* FROM unnest($2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::text[], $7::bigint[],
                          $8::timestamptz[], $9::bigint[], $10::text[], $11::timestamptz[]) AS v
ON CONFLICT (tenant_id, agent_id, server_id, tool_name) DO UPDATE SET
    first_used_at = CASE WHEN {_EARLIER} THEN EXCLUDED.first_used_at ELSE u.first_used_at END,
    first_log_id = CASE WHEN {_EARLIER} THEN EXCLUDED.first_log_id ELSE u.first_log_id END,
    first_idx = CASE WHEN {_EARLIER} THEN EXCLUDED.first_idx ELSE u.first_idx END,
    last_used_at = GREATEST(u.last_used_at, EXCLUDED.last_used_at),
    calls = u.calls + EXCLUDED.calls,
    def_hash = CASE WHEN {_LATER_HASH} THEN EXCLUDED.def_hash ELSE u.def_hash END,
    def_hash_at = CASE WHEN {_LATER_HASH} THEN EXCLUDED.def_hash_at ELSE u.def_hash_at END
"""

_DEFINITIONS_SQL = """
INSERT INTO tool_definitions AS d (tenant_id, server_id, tool_name, def_hash, log_id, first_seen_at,
                                   last_seen_at, first_idx, last_idx, snapshots)
SELECT $1, u.* FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[],
                          $7::timestamptz[], $8::bigint[], $9::bigint[], $10::bigint[]) AS u
ON CONFLICT (tenant_id, server_id, tool_name, def_hash) DO UPDATE SET
    first_seen_at = LEAST(d.first_seen_at, EXCLUDED.first_seen_at),
    last_seen_at = GREATEST(d.last_seen_at, EXCLUDED.last_seen_at),
    first_idx = LEAST(d.first_idx, EXCLUDED.first_idx),
    last_idx = GREATEST(d.last_idx, EXCLUDED.last_idx),
    snapshots = d.snapshots + EXCLUDED.snapshots
"""


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    return [list(c) for c in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]


def _hist_text(hist: list[int]) -> str:
    return "{" + ",".join(map(str, hist)) + "}"


async def _write_hourly(conn: Conn, tenant: str, rows: dict[RollupKey, CallStats]) -> None:
    flat = [(*k, s.calls, s.errors, s.latency_n, s.latency_sum, _hist_text(s.hist), s.cost_micros)
            for k, s in rows.items()]
    await conn.execute(_HOURLY_SQL, tenant, *_columns(flat, 13))


async def _write_narrow(conn: Conn, table: str, tenant: str, rows: Mapping[tuple[Any, ...], CallStats]) -> None:
    cost = table != "rollup_tool_hourly_merged"
    flat = [(*k, s.calls, s.ok, s.errors, s.executed, s.denied, s.step_up, s.latency_n, s.latency_sum,
             _hist_text(s.hist), *((s.cost_micros,) if cost else ())) for k, s in rows.items()]
    width = len(next(iter(rows))) + len(_COUNTERS) + 1 + cost
    await conn.execute(_NARROW[table], tenant, *_columns(flat, width))


async def write_delta(conn: Conn, tenant: str, delta: BatchDelta) -> None:
    """Merge the sums, minima and maxima of ``delta`` (everything but snapshots and key uses)."""
    if delta.hourly:
        await _write_hourly(conn, tenant, delta.hourly)
        narrow: tuple[tuple[str, Mapping[tuple[Any, ...], CallStats]], ...] = (
            ("rollup_tool_hourly", delta.tool_hourly), ("rollup_tool_daily", delta.tool_daily),
            ("rollup_agent_hourly", delta.agent_hourly), ("rollup_agent_daily", delta.agent_daily),
            ("rollup_tool_hourly_merged", delta.tool_hourly_merged), ("rollup_tenant_hourly", delta.tenant_hourly))
        for table, stats in narrow:
            await _write_narrow(conn, table, tenant, stats)
    if delta.rate_limits:
        flat = [(*k, s.events, s.max_observed, s.max_limit, s.max_window_s)
                for k, s in delta.rate_limits.items()]
        await conn.execute(_RATE_SQL, tenant, *_columns(flat, 10))
    if delta.sessions:
        sessions = [(sid, s.agent_id, s.log_id, s.first_at, s.last_at, s.first_idx, s.last_idx, s.events,
                     s.calls, s.errors, s.denials) for sid, s in delta.sessions.items()]
        await conn.execute(_SESSIONS_SQL, tenant, *_columns(sessions, 11))
    if delta.usage:
        usage = [(*k, *u.first, u.last_used_at, u.calls, *(u.def_hash[::-1] if u.def_hash else (None, None)))
                 for k, u in delta.usage.items()]
        await conn.execute(_USAGE_SQL, tenant, *_columns(usage, 10))


async def write_subjects(conn: Conn, tenant: str, uses: Sequence[KeyUse]) -> int:
    """Index the entries sealed with active subject keys; return the rows written.

    The key rows are locked FOR SHARE until commit, so an erasure of one of them waits for this
    transaction and then deletes the rows written here (see migration 0004).
    """
    if not uses:
        return 0
    refs = {r["key_id"]: bytes(r["subject_ref"]) for r in await conn.fetch(
        "SELECT key_id, subject_ref FROM data_keys WHERE tenant_id = $1 AND kind = 'subject'"
        " AND state = 'active' AND key_id = ANY($2::text[]) FOR SHARE",
        tenant, sorted(set().union(*(u.key_ids for u in uses))))}
    rows = [(tenant, refs[k], k, u.log_id, u.idx) for u in uses for k in u.key_ids if k in refs]
    if rows:
        await conn.copy_records_to_table(
            "subject_index", records=rows, columns=("tenant_id", "subject_ref", "key_id", "log_id", "idx"))
    return len(rows)


async def load_servers(conn: Conn, tenant: str, servers: Sequence[str]) -> dict[str, ServerState]:
    """The current tools of ``servers``."""
    state: dict[str, ServerState] = {}
    for r in await conn.fetch(
            "SELECT server_id, tool_name, def_hash, log_id, since_at, since_idx FROM server_tools"
            " WHERE tenant_id = $1 AND server_id = ANY($2::text[])", tenant, list(servers)):
        state.setdefault(r["server_id"], {})[r["tool_name"]] = CurrentTool(
            r["def_hash"], r["log_id"], r["since_at"], r["since_idx"])
    return state


async def write_snapshots(conn: Conn, tenant: str, result: SnapshotResult) -> None:
    """Replace the touched servers' current tools, append the changes, merge the definitions seen."""
    if not result.servers:
        return
    await conn.execute("DELETE FROM server_tools WHERE tenant_id = $1 AND server_id = ANY($2::text[])",
                       tenant, list(result.servers))
    current = [(tenant, server, name, t.def_hash, t.log_id, t.since_at, t.since_idx)
               for server, tools in result.servers.items() for name, t in tools.items()]
    if current:
        await conn.copy_records_to_table("server_tools", records=current, columns=(
            "tenant_id", "server_id", "tool_name", "def_hash", "log_id", "since_at", "since_idx"))
    changes = [(tenant, c.log_id, c.idx, c.server_id, c.tool_name, c.change, c.old_hash, c.new_hash,
                c.occurred_at) for c in result.changes]
    if changes:
        await conn.copy_records_to_table("tool_definition_changes", records=changes, columns=(
            "tenant_id", "log_id", "idx", "server_id", "tool_name", "change", "old_hash", "new_hash",
            "occurred_at"))
    seen: list[tuple[str, str, str, str, datetime, datetime, int, int, int]] = [
        (*k, d.log_id, d.first_seen_at, d.last_seen_at, d.first_idx, d.last_idx, d.snapshots)
        for k, d in result.seen.items()]
    if seen:
        await conn.execute(_DEFINITIONS_SQL, tenant, *_columns(seen, 9))


class PostgresProjectorStore:
    """:class:`ProjectorStore` in the PostgreSQL database the ledger writes."""

    def __init__(self, *, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def logs(self) -> list[LogProgress]:
        with translated("read projector progress"):
            rows = await self._pool.fetch(
                "SELECT l.log_id, l.tenant_id, l.size, coalesce(p.next_idx, 0) AS next_idx"
                " FROM logs l LEFT JOIN projector_progress p USING (log_id) ORDER BY l.log_id")
        return [LogProgress(r["log_id"], r["tenant_id"], r["size"], r["next_idx"]) for r in rows]

    async def project_batch(self, log: LogProgress, *, max_entries: int = DEFAULT_BATCH_ENTRIES,
                            until: int | None = None) -> BatchResult | None:
        with translated("project entries"):
            async with self._pool.acquire() as conn, conn.transaction():
                return await _project(conn, log, max_entries, until)

    async def reset(self) -> None:
        with translated("reset read models"):
            await self._pool.execute(f"TRUNCATE {', '.join(READ_MODELS)}")

    async def check(self, *, batch_entries: int = DEFAULT_BATCH_ENTRIES) -> ReadModelReport:
        return await check_read_models(self._pool, batch_entries=batch_entries)

    async def digest(self) -> dict[str, str]:
        drop = " - ".join(f"'{c}'" for c in VOLATILE_COLUMNS)
        out: dict[str, str] = {}
        with translated("digest read models"):
            async with self._pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
                for table in READ_MODELS:
                    out[table] = await conn.fetchval(
                        f"SELECT md5(coalesce(string_agg(j, E'\\n' ORDER BY j COLLATE \"C\"), ''))"
                        f" FROM (SELECT (to_jsonb(t) - {drop})::text AS j FROM {table} t) x")
        return out


async def _lock_progress(conn: Conn, log: LogProgress) -> int | None:
    await conn.execute("INSERT INTO projector_progress (log_id, tenant_id) VALUES ($1, $2)"
                       " ON CONFLICT DO NOTHING", log.log_id, log.tenant_id)
    value = await conn.fetchval("SELECT next_idx FROM projector_progress WHERE log_id = $1"
                                " FOR UPDATE SKIP LOCKED", log.log_id)
    return None if value is None else int(value)


async def _read(conn: Conn, log_id: str, first: int, end: int) -> list[ProjectedEntry]:
    rows = await conn.fetch(
        "SELECT idx, occurred_at, entry FROM entries WHERE log_id = $1 AND idx >= $2 AND idx < $3"
        " ORDER BY idx", log_id, first, end)
    for i, r in enumerate(rows):
        if r["idx"] != first + i:
            raise SequenceGapError(f"log {log_id} has no entry {first + i}", index=first + i)
    return [ProjectedEntry.parse(log_id=log_id, idx=r["idx"], occurred_at=r["occurred_at"], entry=r["entry"])
            for r in rows]


async def _project(conn: Conn, log: LogProgress, max_entries: int, until: int | None) -> BatchResult | None:
    first = await _lock_progress(conn, log)
    if first is None:
        return None  # another projector holds this log
    end = first + max_entries if until is None else min(first + max_entries, until)
    entries = await _read(conn, log.log_id, first, end) if end > first else []
    if not entries:
        return BatchResult(log.log_id, first, first, 0)
    delta = aggregate(entries)
    await _write(conn, log.tenant_id, delta)
    subjects = await write_subjects(conn, log.tenant_id, delta.key_uses)
    next_idx = entries[-1].idx + 1
    await conn.execute("UPDATE projector_progress SET next_idx = $2, updated_at = now() WHERE log_id = $1",
                       log.log_id, next_idx)
    return BatchResult(log.log_id, first, next_idx, subjects)


async def _write(conn: Conn, tenant: str, delta: BatchDelta) -> None:
    await write_delta(conn, tenant, delta)
    if delta.snapshots:
        servers = sorted({s.server_id for s in delta.snapshots})
        current = await load_servers(conn, tenant, servers)
        await write_snapshots(conn, tenant, apply_snapshots(current, delta.snapshots))


# --- the read-model check (sealtrail admin check-read-models) ------------------------------------

_ENTRY_COPIES = ("tenant_id", "event_id", "type", "occurred_at", "agent_id", "session_id", "server_id",
                 "tool_name", "tool_tier", "decision", "status")
_CHECK_ROWS = 2000
_SCHEMA = "public"


async def _check_entries(conn: Conn) -> tuple[int, list[EntryDisagreement]]:
    """Every entry's column copies and leaf against its bytes, streamed in log order."""
    checked, bad = 0, []
    cols = ", ".join(_ENTRY_COPIES)
    async for r in conn.cursor(f"SELECT log_id, idx, entry, leaf, {cols} FROM entries ORDER BY log_id, idx",
                               prefetch=_CHECK_ROWS):
        checked += 1
        entry = bytes(r["entry"])
        try:
            header = orjson.loads(entry)
        except orjson.JSONDecodeError:
            bad.append(EntryDisagreement(r["log_id"], r["idx"], ("entry",)))
            continue
        fields = signedview.disagreements(entry, bytes(r["leaf"]), header, {c: r[c] for c in _ENTRY_COPIES})
        if fields:
            bad.append(EntryDisagreement(r["log_id"], r["idx"], tuple(fields)))
    return checked, bad


async def _rebuild_in_scratch(conn: Conn, positions: dict[str, tuple[str, int]], batch_entries: int) -> None:
    """Temporary tables named as the read models shadow them for this connection (PostgreSQL looks
    in pg_temp first), so the projector's own statements rebuild into them."""
    for table in READ_MODELS:
        await conn.execute(f"CREATE TEMP TABLE {table} (LIKE {_SCHEMA}.{table} INCLUDING ALL) ON COMMIT DROP")
    for log_id, (tenant, until) in positions.items():
        progress = LogProgress(log_id, tenant, until, 0)
        while True:
            done = await _project(conn, progress, batch_entries, until)
            if done is None or done.next_idx >= until or done.entries == 0:
                break


async def _compare(conn: Conn, table: str) -> ModelDifference | None:
    names = [r["column_name"] for r in await conn.fetch(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2"
        " ORDER BY ordinal_position", _SCHEMA, table) if r["column_name"] not in VOLATILE_COLUMNS]
    cols = ", ".join(names)
    stored, rebuilt = f"SELECT {cols} FROM {_SCHEMA}.{table}", f"SELECT {cols} FROM pg_temp.{table}"
    only_stored = await conn.fetch(f"SELECT to_jsonb(x) - 'subject_ref' AS j FROM ({stored} EXCEPT ALL {rebuilt}) x")
    only_rebuilt = await conn.fetch(f"SELECT to_jsonb(x) - 'subject_ref' AS j FROM ({rebuilt} EXCEPT ALL {stored}) x")
    if not only_stored and not only_rebuilt:
        return None
    examples = ([f"- {r['j']}" for r in only_stored[:MAX_EXAMPLES]]
                + [f"+ {r['j']}" for r in only_rebuilt[:MAX_EXAMPLES]])
    return ModelDifference(table, len(only_stored), len(only_rebuilt), tuple(examples))


async def check_read_models(pool: asyncpg.Pool, *, batch_entries: int = DEFAULT_BATCH_ENTRIES) -> ReadModelReport:
    """:meth:`ProjectorStore.check` over PostgreSQL: one repeatable-read snapshot, rolled back."""
    with translated("check read models"):
        async with pool.acquire() as conn:
            tx = conn.transaction(isolation="repeatable_read")
            await tx.start()
            try:
                rows = await conn.fetch("SELECT p.log_id, l.tenant_id, p.next_idx FROM projector_progress p"
                                        " JOIN logs l USING (log_id) WHERE p.next_idx > 0 ORDER BY p.log_id")
                positions = {r["log_id"]: (r["tenant_id"], r["next_idx"]) for r in rows}
                checked, entries = await _check_entries(conn)
                await _rebuild_in_scratch(conn, positions, batch_entries)
                models = [d for t in READ_MODELS if (d := await _compare(conn, t)) is not None]
            finally:
                await tx.rollback()
    return ReadModelReport({k: v[1] for k, v in positions.items()}, checked, entries, models)
