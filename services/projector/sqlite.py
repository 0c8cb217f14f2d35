""":class:`~services.projector.ports.ProjectorStore` over the embedded SQLite database.

A batch is one write transaction on the database's single writer thread: read the progress row
and the entries, aggregate (:func:`services.projector.rollups.aggregate`, the same pure code as
PostgreSQL), merge the deltas into the read models with ``INSERT ... ON CONFLICT DO UPDATE``,
index the subject keys, advance the progress row. The single writer serialises projectors and
erasures in this process; ``BEGIN IMMEDIATE`` serialises another process on the same file, so
:meth:`SqliteProjectorStore.project_batch` never needs to skip a log (it never returns None).

Latency histograms are JSON arrays; the merge ``sealtrail_hist_add`` is a Python function
registered on the writer's connection. Text compares bytewise (UTF-8, i.e. code-point order, as
PostgreSQL's ``COLLATE "C"`` and Python do), so every row ends the same whatever the batch
boundaries. Tenant isolation: every statement names the tenant (no row-level security in SQLite).
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson

from sealtrail.core import signedview
from sealtrail.errors import SequenceGapError
from sealtrail.infra.micros import from_micros
from sealtrail.infra.sqlite import SqliteDatabase, db_now, from_db_time, to_db_time, translated
from services.projector.ports import (
    DEFAULT_BATCH_ENTRIES,
    MAX_EXAMPLES,
    READ_MODELS,
    BatchResult,
    EntryDisagreement,
    LogProgress,
    ModelDifference,
    ReadModelReport,
)
from services.projector.rollups import BatchDelta, KeyUse, ProjectedEntry, aggregate
from services.projector.tooldefs import CurrentTool, ServerState, SnapshotResult, apply_snapshots

VOLATILE_COLUMNS = ("updated_at",)
_COUNTERS = ("calls", "ok", "errors", "executed", "denied", "step_up", "latency_n", "latency_sum")


def hist_add(a: str, b: str) -> str:
    """Elementwise sum of two JSON histograms (registered as ``sealtrail_hist_add``)."""
    return orjson.dumps([x + y for x, y in zip(orjson.loads(a), orjson.loads(b), strict=True)]).decode()


def _db(v: Any) -> Any:
    return to_db_time(v) if isinstance(v, datetime) else v


def _upsert(table: str, keys: Sequence[str], values: Sequence[str], merge: str) -> str:
    cols = [*keys, *values]
    return (f"INSERT INTO {table} (tenant_id, {', '.join(cols)}) VALUES ({', '.join('?' * (len(cols) + 1))})"
            f" ON CONFLICT (tenant_id, {', '.join(keys)}) DO UPDATE SET {merge}")


def _sum(*cols: str) -> str:
    return ", ".join(f"{c} = {c} + excluded.{c}" for c in cols)


_HIST_MERGE = "latency_hist = sealtrail_hist_add(latency_hist, excluded.latency_hist)"
_HOURLY_KEYS = ("bucket", "server_id", "tool_name", "agent_id", "decision", "status", "currency")
_HOURLY_SQL = _upsert("rollup_hourly", _HOURLY_KEYS,
                      ("calls", "errors", "latency_n", "latency_sum", "latency_hist", "cost_micros"),
                      f"{_sum('calls', 'errors', 'latency_n', 'latency_sum', 'cost_micros')}, {_HIST_MERGE}")
_NARROW_KEYS = {"rollup_tool_hourly": ("bucket", "server_id", "tool_name", "currency"),
                "rollup_tool_daily": ("bucket", "server_id", "tool_name", "currency"),
                "rollup_agent_hourly": ("bucket", "agent_id", "currency"),
                "rollup_agent_daily": ("bucket", "agent_id", "currency"),
                "rollup_tenant_hourly": ("bucket", "currency")}
_NARROW = {t: _upsert(t, k, (*_COUNTERS, "latency_hist", "cost_micros"),
                      f"{_sum(*_COUNTERS, 'cost_micros')}, {_HIST_MERGE}") for t, k in _NARROW_KEYS.items()}
# Every currency together: no cost column.
_NARROW["rollup_tool_hourly_merged"] = _upsert("rollup_tool_hourly_merged", ("bucket", "server_id", "tool_name"),
                                               (*_COUNTERS, "latency_hist"), f"{_sum(*_COUNTERS)}, {_HIST_MERGE}")
_RATE_SQL = _upsert(
    "rollup_rate_limits", ("bucket", "limit_id", "scope", "agent_id", "server_id", "tool_name"),
    ("events", "max_observed", "max_limit", "max_window_s"),
    "events = events + excluded.events, max_observed = max(max_observed, excluded.max_observed),"
    " max_limit = max(max_limit, excluded.max_limit), max_window_s = max(max_window_s, excluded.max_window_s)")
# PostgreSQL's LEAST ignores NULLs; SQLite's two-argument min() does not.
_SESSIONS_SQL = _upsert(
    "sessions", ("session_id",),
    ("agent_id", "log_id", "first_at", "last_at", "first_idx", "last_idx", "events", "calls", "errors", "denials"),
    "agent_id = coalesce(min(agent_id, excluded.agent_id), agent_id, excluded.agent_id),"
    " first_at = min(first_at, excluded.first_at), last_at = max(last_at, excluded.last_at),"
    " first_idx = min(first_idx, excluded.first_idx), last_idx = max(last_idx, excluded.last_idx),"
    f" {_sum('events', 'calls', 'errors', 'denials')}")
_EARLIER = ("(excluded.first_used_at, excluded.first_log_id, excluded.first_idx)"
            " < (first_used_at, first_log_id, first_idx)")
_LATER_HASH = ("excluded.def_hash_at IS NOT NULL AND (def_hash_at IS NULL OR"
               " (excluded.def_hash_at, excluded.def_hash) > (def_hash_at, def_hash))")
# SQLite evaluates every SET expression against the old row, so the CASEs see the old values.
_USAGE_SQL = _upsert(
    "tool_usage", ("agent_id", "server_id", "tool_name"),
    ("first_used_at", "first_log_id", "first_idx", "last_used_at", "calls", "def_hash", "def_hash_at"),
    ", ".join(f"{c} = CASE WHEN {_EARLIER} THEN excluded.{c} ELSE {c} END"
              for c in ("first_used_at", "first_log_id", "first_idx"))
    + ", last_used_at = max(last_used_at, excluded.last_used_at), calls = calls + excluded.calls, "
    + ", ".join(f"{c} = CASE WHEN {_LATER_HASH} THEN excluded.{c} ELSE {c} END" for c in ("def_hash", "def_hash_at")))
_DEFINITIONS_SQL = _upsert(
    "tool_definitions", ("server_id", "tool_name", "def_hash"),
    ("log_id", "first_seen_at", "last_seen_at", "first_idx", "last_idx", "snapshots"),
    "first_seen_at = min(first_seen_at, excluded.first_seen_at), last_seen_at = max(last_seen_at,"
    " excluded.last_seen_at), first_idx = min(first_idx, excluded.first_idx),"
    " last_idx = max(last_idx, excluded.last_idx), snapshots = snapshots + excluded.snapshots")


def _many(conn: sqlite3.Connection, sql: str, tenant: str, rows: Sequence[Sequence[Any]]) -> None:
    if rows:
        conn.executemany(sql, [(tenant, *map(_db, r)) for r in rows])


def _hist(h: list[int]) -> str:
    return orjson.dumps(h).decode()


def write_delta(conn: sqlite3.Connection, tenant: str, delta: BatchDelta) -> None:
    """Merge the sums, minima and maxima of ``delta`` (everything but snapshots and key uses)."""
    _many(conn, _HOURLY_SQL, tenant, [(*k, s.calls, s.errors, s.latency_n, s.latency_sum, _hist(s.hist),
                                       s.cost_micros) for k, s in delta.hourly.items()])
    narrow: Mapping[str, Mapping[Any, Any]] = {
        "rollup_tool_hourly": delta.tool_hourly, "rollup_tool_daily": delta.tool_daily,
        "rollup_agent_hourly": delta.agent_hourly, "rollup_agent_daily": delta.agent_daily,
        "rollup_tool_hourly_merged": delta.tool_hourly_merged, "rollup_tenant_hourly": delta.tenant_hourly}
    for table, stats in narrow.items():
        cost = table != "rollup_tool_hourly_merged"
        _many(conn, _NARROW[table], tenant, [
            (*k, s.calls, s.ok, s.errors, s.executed, s.denied, s.step_up, s.latency_n, s.latency_sum,
             _hist(s.hist), *((s.cost_micros,) if cost else ())) for k, s in stats.items()])
    _many(conn, _RATE_SQL, tenant, [(*k, s.events, s.max_observed, s.max_limit, s.max_window_s)
                                    for k, s in delta.rate_limits.items()])
    _many(conn, _SESSIONS_SQL, tenant, [
        (sid, s.agent_id, s.log_id, s.first_at, s.last_at, s.first_idx, s.last_idx, s.events, s.calls,
         s.errors, s.denials) for sid, s in delta.sessions.items()])
    _many(conn, _USAGE_SQL, tenant, [
        (*k, *u.first, u.last_used_at, u.calls, *(u.def_hash[::-1] if u.def_hash else (None, None)))
        for k, u in delta.usage.items()])


def write_subjects(conn: sqlite3.Connection, tenant: str, uses: Sequence[KeyUse]) -> int:
    """Index the entries sealed with active subject keys; return the rows written."""
    wanted = sorted(set().union(*(u.key_ids for u in uses))) if uses else []
    if not wanted:
        return 0
    refs = {k: bytes(r) for k, r in conn.execute(
        "SELECT key_id, subject_ref FROM data_keys WHERE tenant_id = ? AND kind = 'subject'"
        " AND state = 'active' AND key_id IN (SELECT value FROM json_each(?))",
        (tenant, orjson.dumps(wanted).decode()))}
    rows = [(tenant, refs[k], k, u.log_id, u.idx) for u in uses for k in u.key_ids if k in refs]
    conn.executemany("INSERT INTO subject_index (tenant_id, subject_ref, key_id, log_id, idx) VALUES (?, ?, ?, ?, ?)",
                     rows)
    return len(rows)


def load_servers(conn: sqlite3.Connection, tenant: str, servers: Sequence[str]) -> dict[str, ServerState]:
    state: dict[str, ServerState] = {}
    for server, name, h, log_id, since_at, since_idx in conn.execute(
            "SELECT server_id, tool_name, def_hash, log_id, since_at, since_idx FROM server_tools"
            " WHERE tenant_id = ? AND server_id IN (SELECT value FROM json_each(?))",
            (tenant, orjson.dumps(list(servers)).decode())):
        state.setdefault(server, {})[name] = CurrentTool(h, log_id, from_db_time(since_at), since_idx)
    return state


def write_snapshots(conn: sqlite3.Connection, tenant: str, result: SnapshotResult) -> None:
    """Replace the touched servers' current tools, append the changes, merge the definitions seen."""
    if not result.servers:
        return
    conn.execute("DELETE FROM server_tools WHERE tenant_id = ? AND server_id IN (SELECT value FROM json_each(?))",
                 (tenant, orjson.dumps(list(result.servers)).decode()))
    conn.executemany(
        "INSERT INTO server_tools (tenant_id, server_id, tool_name, def_hash, log_id, since_at, since_idx)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(tenant, server, name, t.def_hash, t.log_id, to_db_time(t.since_at), t.since_idx)
         for server, tools in result.servers.items() for name, t in tools.items()])
    conn.executemany(
        "INSERT INTO tool_definition_changes (tenant_id, log_id, idx, server_id, tool_name, change, old_hash,"
        " new_hash, occurred_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(tenant, c.log_id, c.idx, c.server_id, c.tool_name, c.change, c.old_hash, c.new_hash,
          to_db_time(c.occurred_at)) for c in result.changes])
    _many(conn, _DEFINITIONS_SQL, tenant, [
        (*k, d.log_id, d.first_seen_at, d.last_seen_at, d.first_idx, d.last_idx, d.snapshots)
        for k, d in result.seen.items()])


def _read(conn: sqlite3.Connection, log: LogProgress, first: int, end: int) -> list[ProjectedEntry]:
    rows = conn.execute("SELECT idx, occurred_at, entry FROM entries WHERE log_id = ? AND tenant_id = ?"
                        " AND idx >= ? AND idx < ? ORDER BY idx", (log.log_id, log.tenant_id, first, end)).fetchall()
    for i, (idx, _, _) in enumerate(rows):
        if idx != first + i:
            raise SequenceGapError(f"log {log.log_id} has no entry {first + i}", index=first + i)
    return [ProjectedEntry.parse(log_id=log.log_id, idx=idx, occurred_at=from_micros(at), entry=entry)
            for idx, at, entry in rows]


def _project(conn: sqlite3.Connection, log: LogProgress, max_entries: int, until: int | None) -> BatchResult:
    conn.create_function("sealtrail_hist_add", 2, hist_add, deterministic=True)
    conn.execute("INSERT INTO projector_progress (log_id, tenant_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
                 (log.log_id, log.tenant_id))
    (first,) = conn.execute("SELECT next_idx FROM projector_progress WHERE log_id = ? AND tenant_id = ?",
                            (log.log_id, log.tenant_id)).fetchone()
    end = first + max_entries if until is None else min(first + max_entries, until)
    entries = _read(conn, log, first, end) if end > first else []
    if not entries:
        return BatchResult(log.log_id, first, first, 0)
    delta = aggregate(entries)
    write_delta(conn, log.tenant_id, delta)
    if delta.snapshots:
        servers = sorted({s.server_id for s in delta.snapshots})
        current = load_servers(conn, log.tenant_id, servers)
        write_snapshots(conn, log.tenant_id, apply_snapshots(current, delta.snapshots))
    subjects = write_subjects(conn, log.tenant_id, delta.key_uses)
    next_idx = entries[-1].idx + 1
    conn.execute("UPDATE projector_progress SET next_idx = ?, updated_at = ? WHERE log_id = ?",
                 (next_idx, db_now(), log.log_id))
    return BatchResult(log.log_id, first, next_idx, subjects)


class SqliteProjectorStore:
    """:class:`~services.projector.ports.ProjectorStore` in the embedded SQLite database."""

    def __init__(self, *, db: SqliteDatabase) -> None:
        self._db = db

    async def logs(self) -> list[LogProgress]:
        def run(conn: sqlite3.Connection) -> list[LogProgress]:
            rows = conn.execute(
                "SELECT l.log_id, l.tenant_id, l.size, coalesce(p.next_idx, 0) FROM logs l"
                " LEFT JOIN projector_progress p ON p.log_id = l.log_id AND p.tenant_id = l.tenant_id"
                " ORDER BY l.log_id").fetchall()
            return [LogProgress(*r) for r in rows]

        with translated("read projector progress"):
            return await self._db.read(run)

    async def project_batch(self, log: LogProgress, *, max_entries: int = DEFAULT_BATCH_ENTRIES,
                            until: int | None = None) -> BatchResult | None:
        with translated("project entries"):
            # Not fsync'd: a batch lost to a machine crash is projected again from the entries.
            return await self._db.write(lambda conn: _project(conn, log, max_entries, until), durable=False)

    async def reset(self) -> None:
        def run(conn: sqlite3.Connection) -> None:
            for table in READ_MODELS:
                conn.execute(f"DELETE FROM {table}")

        with translated("reset read models"):
            await self._db.write(run)

    async def check(self, *, batch_entries: int = DEFAULT_BATCH_ENTRIES) -> ReadModelReport:
        with translated("check read models"):
            return await self._db.read(lambda conn: check_read_models(conn, batch_entries))

    async def digest(self) -> dict[str, str]:
        with translated("digest read models"):
            return await self._db.read(_digest)


def _digest(conn: sqlite3.Connection) -> dict[str, str]:
    out: dict[str, str] = {}
    for table in READ_MODELS:
        cur = conn.execute(f"SELECT * FROM {table}")
        names = [d[0] for d in cur.description]
        lines = sorted(orjson.dumps({n: (v.hex() if isinstance(v, bytes) else v)
                                     for n, v in zip(names, row, strict=True) if n not in VOLATILE_COLUMNS},
                                    option=orjson.OPT_SORT_KEYS) for row in cur)
        out[table] = hashlib.md5(b"\n".join(lines), usedforsecurity=False).hexdigest()
    return out


# --- the read-model check (sealtrail admin check-read-models) ------------------------------------

_ENTRY_COPIES = ("tenant_id", "event_id", "type", "occurred_at", "agent_id", "session_id", "server_id",
                 "tool_name", "tool_tier", "decision", "status")


def _check_entries(conn: sqlite3.Connection) -> tuple[int, list[EntryDisagreement]]:
    checked, bad = 0, []
    cur = conn.execute(f"SELECT log_id, idx, entry, leaf, {', '.join(_ENTRY_COPIES)} FROM main.entries"
                       " ORDER BY log_id, idx")
    for row in cur:
        checked += 1
        entry = bytes(row[2])
        try:
            header = orjson.loads(entry)
        except orjson.JSONDecodeError:
            bad.append(EntryDisagreement(row[0], row[1], ("entry",)))
            continue
        copies = dict(zip(_ENTRY_COPIES, row[4:], strict=True))
        copies["occurred_at"] = from_micros(copies["occurred_at"])
        fields = signedview.disagreements(entry, bytes(row[3]), header, copies)
        if fields:
            bad.append(EntryDisagreement(row[0], row[1], tuple(fields)))
    return checked, bad


def _scratch(conn: sqlite3.Connection) -> None:
    """Temporary tables and indexes named as the read models: SQLite resolves unqualified names in
    the temp schema first, so the projector's own statements rebuild into them."""
    for table in READ_MODELS:
        for kind, sql in conn.execute("SELECT type, sql FROM main.sqlite_master WHERE tbl_name = ?"
                                      " AND sql IS NOT NULL ORDER BY type = 'index'", (table,)).fetchall():
            if kind == "table":
                conn.execute(sql.replace("CREATE TABLE", "CREATE TEMP TABLE", 1))
            elif kind == "index":
                head, _, rest = sql.partition(" ON ")
                words = head.split()
                words[-1] = "temp." + words[-1]
                conn.execute(" ".join(words) + " ON " + rest)


def _compare(conn: sqlite3.Connection, table: str) -> ModelDifference | None:
    names = [r[1] for r in conn.execute(f"PRAGMA main.table_info({table})") if r[1] not in VOLATILE_COLUMNS]
    cols = ", ".join(names)
    shown = [i for i, n in enumerate(names) if n != "subject_ref"]

    def rows(a: str, b: str) -> list[str]:
        out = conn.execute(f"SELECT {cols} FROM {a}.{table} EXCEPT SELECT {cols} FROM {b}.{table}").fetchall()
        return [orjson.dumps({names[i]: r[i] for i in shown}).decode() for r in out]

    only_stored, only_rebuilt = rows("main", "temp"), rows("temp", "main")
    if not only_stored and not only_rebuilt:
        return None
    examples = [f"- {j}" for j in only_stored[:MAX_EXAMPLES]] + [f"+ {j}" for j in only_rebuilt[:MAX_EXAMPLES]]
    return ModelDifference(table, len(only_stored), len(only_rebuilt), tuple(examples))


def check_read_models(conn: sqlite3.Connection, batch_entries: int) -> ReadModelReport:
    """:meth:`ProjectorStore.check` in one read transaction: the scratch tables live in the
    connection's temp schema (no write lock on the database) and are dropped afterwards."""
    rows = conn.execute("SELECT p.log_id, l.tenant_id, p.next_idx FROM main.projector_progress p"
                        " JOIN main.logs l ON l.log_id = p.log_id WHERE p.next_idx > 0 ORDER BY p.log_id").fetchall()
    checked, entries = _check_entries(conn)
    _scratch(conn)
    try:
        for log_id, tenant, until in rows:
            progress = LogProgress(log_id, tenant, until, 0)
            while True:
                done = _project(conn, progress, batch_entries, until)
                if done.next_idx >= until or done.entries == 0:
                    break
        models = [d for t in READ_MODELS if (d := _compare(conn, t)) is not None]
    finally:
        for table in READ_MODELS:
            conn.execute(f"DROP TABLE IF EXISTS temp.{table}")
    return ReadModelReport({r[0]: r[2] for r in rows}, checked, entries, models)
