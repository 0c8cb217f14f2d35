""":class:`~services.query.ports.InvestigationReader` over the embedded SQLite database.

SQLite has no row-level security: every statement here names the tenant (``tenant_id = ?`` on
entries, payloads, sessions and the subject index; a log is looked up with its tenant), and that
filter is the only barrier between tenants. Each method is one read transaction (one snapshot).
Timestamps are fixed-width UTC text, so text order is time order and row-value comparisons give
the same keyset order as PostgreSQL's.
"""

from __future__ import annotations

import sqlite3
import uuid
from typing import Any

import orjson

from sealtrail.core.sealing import payload_digest_bytes
from sealtrail.infra.micros import from_micros, to_micros
from sealtrail.infra.sqlite import SqliteDatabase, from_db_time, translated
from services.query.cursor import Position
from services.query.ports import CHECKED_COLUMNS, FILTER_COLUMNS, CallFilter, Found, PageRow, StoredCall

# What every read returns of an entry: where it is, its bytes and leaf, and the copies to check.
_ENTRY = "e.log_id, e.idx, e.occurred_at, e.entry, e.leaf, " + ", ".join(f"e.{c}" for c in CHECKED_COLUMNS)
_N = 5 + len(CHECKED_COLUMNS)  # columns of _ENTRY
_PAYLOAD = ", p.nonce, p.ciphertext"
_PAYLOAD_JOIN = " LEFT JOIN payloads p ON p.log_id = e.log_id AND p.idx = e.idx AND p.tenant_id = e.tenant_id"

# An entry by event id (tenant, tenant, event id): served by UNIQUE (log_id, event_id), one probe
# per log of the tenant (migration 0015 dropped the index on (tenant_id, event_id)). The unary +
# keeps the planner off the indexes that lead with tenant_id, which would read every entry.
EVENT_WHERE = (" WHERE e.log_id IN (SELECT log_id FROM logs WHERE tenant_id = ?) AND +e.tenant_id = ?"
               " AND e.event_id = ?")

# A session's entries, oldest first. Without statistics SQLite walked entries_time through every
# entry of the tenant to avoid a sort (55 ms at 300,000 entries); the session's own rows, read by
# entries_session and sorted, take 0.1 ms.
SESSION_SQL = ("SELECT {entry} FROM entries e INDEXED BY entries_session WHERE e.tenant_id = ? AND e.session_id = ?"
               "{after} ORDER BY e.occurred_at, e.log_id, e.idx LIMIT ?")

# Served by the partial index entries_system_events (migration 0008).
# A page of a log for auditors: entry, chain and the payload (to digest) in one statement, by
# the primary keys (log_id, idx) of both tables.
# The page joins payloads of the reading tenant, not of the entry's tenant column: a changed column
# copy must not make a stored payload look missing (the signed-view checks report such copies).
ENTRY_PAGE_SQL = ("SELECT e.idx, e.entry, e.chain, p.nonce, p.ciphertext FROM entries e"
                  " LEFT JOIN payloads p ON p.log_id = e.log_id AND p.idx = e.idx AND p.tenant_id = ?"
                  " WHERE e.log_id = ? AND e.idx >= ? AND e.idx < ? ORDER BY e.idx")
ERASURE_EVENTS_SQL = ("SELECT idx, entry FROM entries WHERE log_id = ? AND tenant_id = ?"
                      " AND type IN ('erasure', 'retention') ORDER BY idx")


def _found(row: tuple[Any, ...], subject_key_id: str | None = None) -> Found:
    entry = bytes(row[3])
    return Found(row[0], row[1], from_micros(row[2]), orjson.loads(entry), entry, bytes(row[4]),
                 dict(zip(CHECKED_COLUMNS, row[5:_N], strict=True)), subject_key_id)


def _stored(row: tuple[Any, ...], subject_key_id: str | None = None) -> StoredCall:
    """An entry row followed by the payload columns (nonce, ciphertext), if read. The payload's key
    ids are the entry's (``payloads`` keeps no copy since migration 0015), once each, in order, as
    the ledger listed them in ``payload_keys``."""
    found = _found(row)
    if len(row) < _N + 2 or row[_N + 1] is None:
        return StoredCall(found, None, None, None, subject_key_id)
    key_ids = tuple(dict.fromkeys(str(k) for k in found.header.get("key_ids", ())))
    return StoredCall(found, key_ids, bytes(row[_N]), bytes(row[_N + 1]), subject_key_id)


def _search_sql(tenant: str, f: CallFilter, after: Position | None, limit: int) -> tuple[str, list[object]]:
    where: list[str] = ["e.tenant_id = ?"]
    args: list[object] = [tenant]
    for name, value in f.equals.items():
        where.append(f"e.{FILTER_COLUMNS[name]} = ?")
        args.append(value)
    if f.occurred_from is not None:
        where.append("e.occurred_at >= ?")
        args.append(to_micros(f.occurred_from))
    if f.occurred_to is not None:
        where.append("e.occurred_at < ?")
        args.append(to_micros(f.occurred_to))
    join = ""
    if f.subject_ref is not None:
        join = " JOIN subject_index s ON s.log_id = e.log_id AND s.idx = e.idx"
        where.append("s.tenant_id = e.tenant_id AND s.subject_ref = ?")
        args.append(f.subject_ref)
    if after is not None:
        t = to_micros(after.time())
        where.append("e.occurred_at <= ? AND (e.occurred_at, e.log_id, e.idx) < (?, ?, ?)")
        args += [t, t, after.log_id, after.idx]
    key = ", s.key_id" if f.subject_ref is not None else ""
    sql = (f"SELECT {_ENTRY}{key} FROM entries e{join} WHERE {' AND '.join(where)}"
           " ORDER BY e.occurred_at DESC, e.log_id DESC, e.idx DESC LIMIT ?")
    return sql, [*args, limit + 1]


class SqliteInvestigationReader:
    """Investigation reads over the ledger's and the projector's SQLite tables."""

    def __init__(self, *, db: SqliteDatabase) -> None:
        self._db = db

    async def _rows(self, sql: str, *args: object) -> list[tuple[Any, ...]]:
        with translated("read"):
            return await self._db.read(lambda conn: conn.execute(sql, args).fetchall())

    async def search_calls(self, tenant: str, f: CallFilter, after: Position | None, limit: int
                           ) -> tuple[list[Found], bool]:
        sql, args = _search_sql(tenant, f, after, limit)
        rows = await self._rows(sql, *args)
        by_subject = f.subject_ref is not None
        return [_found(r, r[_N] if by_subject else None) for r in rows[:limit]], len(rows) > limit

    async def session_timeline(self, tenant: str, session_id: str, after: Position | None, limit: int
                               ) -> tuple[list[Found], bool]:
        args: list[object] = [tenant, session_id]
        cond = ""
        if after is not None:
            args += [to_micros(after.time()), after.log_id, after.idx]
            cond = " AND (e.occurred_at, e.log_id, e.idx) > (?, ?, ?)"
        rows = await self._rows(SESSION_SQL.format(entry=_ENTRY, after=cond), *args, limit + 1)
        return [_found(r) for r in rows[:limit]], len(rows) > limit

    async def session_summary(self, tenant: str, session_id: str) -> dict[str, Any] | None:
        rows = await self._rows(
            "SELECT agent_id, first_at, last_at, events, calls, errors, denials FROM sessions"
            " WHERE tenant_id = ? AND session_id = ?", tenant, session_id)
        if not rows:
            return None
        agent, first, last, events, calls, errors, denials = rows[0]
        return {"agent_id": agent, "first_at": from_db_time(first).isoformat(),
                "last_at": from_db_time(last).isoformat(), "events": events, "calls": calls,
                "errors": errors, "denials": denials}

    async def call_by_event_id(self, tenant: str, event_id: uuid.UUID, *, with_payload: bool
                               ) -> StoredCall | None:
        cols, join = (_PAYLOAD, _PAYLOAD_JOIN) if with_payload else ("", "")
        rows = await self._rows(f"SELECT {_ENTRY}{cols} FROM entries e{join}{EVENT_WHERE} LIMIT 1",
                                tenant, tenant, str(event_id))
        return _stored(rows[0]) if rows else None

    async def subject_calls(self, tenant: str, ref: bytes, after: Position | None, limit: int
                            ) -> tuple[list[StoredCall], bool]:
        args: list[object] = [tenant, ref]
        cond = ""
        if after is not None:
            args += [after.log_id, after.idx]
            cond = " AND (s.log_id, s.idx) > (?, ?)"
        rows = await self._rows(
            f"SELECT {_ENTRY}{_PAYLOAD}, s.key_id FROM subject_index s"
            " JOIN entries e ON e.log_id = s.log_id AND e.idx = s.idx AND e.tenant_id = s.tenant_id"
            f"{_PAYLOAD_JOIN} WHERE s.tenant_id = ? AND s.subject_ref = ?{cond}"
            " ORDER BY s.log_id, s.idx LIMIT ?", *args, limit + 1)
        return [_stored(r, r[-1]) for r in rows[:limit]], len(rows) > limit

    async def entry_page(self, tenant: str, log_id: str, start: int, end: int) -> list[PageRow] | None:
        def run(conn: sqlite3.Connection) -> list[PageRow] | None:
            if conn.execute("SELECT 1 FROM logs WHERE log_id = ? AND tenant_id = ?",
                            (log_id, tenant)).fetchone() is None:
                return None
            return [(i, e, ch, None if n is None else payload_digest_bytes(n, ct))
                    for i, e, ch, n, ct in conn.execute(ENTRY_PAGE_SQL, (tenant, log_id, start, end))]

        with translated("read entries"):
            return await self._db.read(run)

    async def erasure_events(self, tenant: str, log_id: str) -> list[tuple[int, bytes]] | None:
        def run(conn: sqlite3.Connection) -> list[tuple[int, bytes]] | None:
            if conn.execute("SELECT 1 FROM logs WHERE log_id = ? AND tenant_id = ?",
                            (log_id, tenant)).fetchone() is None:
                return None
            return [(i, bytes(e)) for i, e in conn.execute(ERASURE_EVENTS_SQL, (log_id, tenant))]

        with translated("read erasure events"):
            return await self._db.read(run)
