""":class:`~services.query.ports.InvestigationReader` in PostgreSQL: searches, session timelines, one
call, a subject's calls, payload digests and a log's erasure events, over the ledger's ``entries``.

Each read runs in :func:`services.query.postgres.scope.tenant_scope` (read-only, as ``sealtrail_reader``
with ``sealtrail.tenant`` set: row-level security keeps tenants apart); the tenant is also named in each
statement so that the ``(tenant_id, ...)`` indexes are used. Headers are returned exactly as stored in
the log (the entry bytes), never rebuilt from the column copies.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import orjson

from sealtrail.core.sealing import payload_digest_bytes
from sealtrail.infra.postgres import Conn
from services.query.cursor import Position
from services.query.ports import CHECKED_COLUMNS, FILTER_COLUMNS, CallFilter, Found, PageRow, StoredCall
from services.query.postgres.scope import tenant_scope

# What every read returns of an entry: where it is, its bytes and leaf, and the copies to check.
_ENTRY = "e.log_id, e.idx, e.occurred_at, e.entry, e.leaf, " + ", ".join(f"e.{c}" for c in CHECKED_COLUMNS)


def _found(row: asyncpg.Record) -> Found:
    entry = bytes(row["entry"])
    return Found(row["log_id"], row["idx"], row["occurred_at"], orjson.loads(entry), entry, bytes(row["leaf"]),
                 {c: row[c] for c in CHECKED_COLUMNS}, row.get("subject_key_id"))


class _Sql:
    """A WHERE clause with numbered parameters."""

    def __init__(self) -> None:
        self.where: list[str] = []
        self.args: list[object] = []

    def arg(self, value: object) -> str:
        self.args.append(value)
        return f"${len(self.args)}"


def _search_sql(tenant: str, f: CallFilter, after: Position | None, limit: int) -> tuple[str, list[object]]:
    q = _Sql()
    q.where.append(f"e.tenant_id = {q.arg(tenant)}")
    for name, value in f.equals.items():
        q.where.append(f"e.{FILTER_COLUMNS[name]} = {q.arg(value)}")
    if f.occurred_from is not None:
        q.where.append(f"e.occurred_at >= {q.arg(f.occurred_from)}")
    if f.occurred_to is not None:
        q.where.append(f"e.occurred_at < {q.arg(f.occurred_to)}")
    join = ""
    if f.subject_ref is not None:
        join = " JOIN subject_index s ON s.log_id = e.log_id AND s.idx = e.idx"
        q.where.append(f"s.tenant_id = e.tenant_id AND s.subject_ref = {q.arg(f.subject_ref)}")
    if after is not None:
        t = q.arg(after.time())
        # The plain bound lets the (tenant_id, ..., occurred_at) indexes stop early.
        log_id, idx = q.arg(after.log_id), q.arg(after.idx)
        q.where.append(f"e.occurred_at <= {t} AND (e.occurred_at, e.log_id, e.idx) < ({t}, {log_id}, {idx})")
    key = ", s.key_id AS subject_key_id" if f.subject_ref is not None else ""
    sql = (f"SELECT {_ENTRY}{key} FROM entries e{join}"
           f" WHERE {' AND '.join(q.where)}"
           f" ORDER BY e.occurred_at DESC, e.log_id DESC, e.idx DESC LIMIT {q.arg(limit + 1)}")
    return sql, q.args


async def search_calls(conn: Conn, tenant: str, f: CallFilter, after: Position | None,
                       limit: int) -> tuple[list[Found], bool]:
    """Newest first; returns at most ``limit`` entries and whether more follow."""
    sql, args = _search_sql(tenant, f, after, limit)
    rows = await conn.fetch(sql, *args)
    return [_found(r) for r in rows[:limit]], len(rows) > limit


async def session_timeline(conn: Conn, tenant: str, session_id: str, after: Position | None,
                           limit: int) -> tuple[list[Found], bool]:
    """Every entry of one session, oldest first; at most ``limit`` and whether more follow."""
    args: list[object] = [tenant, session_id, limit + 1]
    cond = ""
    if after is not None:
        args += [after.time(), after.log_id, after.idx]
        cond = " AND (e.occurred_at, e.log_id, e.idx) > ($4, $5, $6)"
    rows = await conn.fetch(
        f"SELECT {_ENTRY} FROM entries e WHERE e.tenant_id = $1 AND e.session_id = $2"
        f"{cond} ORDER BY e.occurred_at, e.log_id, e.idx LIMIT $3", *args)
    return [_found(r) for r in rows[:limit]], len(rows) > limit


async def call_by_event_id(conn: Conn, event_id: uuid.UUID, *, with_payload: bool) -> StoredCall | None:
    """The tenant's entry with ``event_id`` (and its ciphertext when asked), or None."""
    payload_cols = ", p.key_ids, p.nonce, p.ciphertext" if with_payload else ""
    payload_join = " LEFT JOIN payloads p ON p.log_id = e.log_id AND p.idx = e.idx" if with_payload else ""
    row = await conn.fetchrow(
        f"SELECT {_ENTRY}{payload_cols} FROM entries e{payload_join}"
        " WHERE e.log_id IN (SELECT log_id FROM logs) AND e.event_id = $1 LIMIT 1", event_id)
    if row is None:
        return None
    return _stored(row, with_payload)


def _stored(row: asyncpg.Record, with_payload: bool, subject_key_id: str | None = None) -> StoredCall:
    found = _found(row)
    if not with_payload or row["ciphertext"] is None:
        return StoredCall(found, None, None, None, subject_key_id)
    return StoredCall(found, tuple(row["key_ids"]), bytes(row["nonce"]), bytes(row["ciphertext"]), subject_key_id)


async def subject_calls(conn: Conn, tenant: str, ref: bytes, after: Position | None,
                        limit: int) -> tuple[list[StoredCall], bool]:
    """The entries the subject index lists for ``ref``, in log order, with their payloads."""
    args: list[object] = [tenant, ref, limit + 1]
    cond = ""
    if after is not None:
        args += [after.log_id, after.idx]
        cond = " AND (s.log_id, s.idx) > ($4, $5)"
    rows = await conn.fetch(
        f"SELECT {_ENTRY}, s.key_id AS subject_key_id, p.key_ids, p.nonce, p.ciphertext"
        " FROM subject_index s JOIN entries e ON e.log_id = s.log_id AND e.idx = s.idx"
        " LEFT JOIN payloads p ON p.log_id = s.log_id AND p.idx = s.idx"
        f" WHERE s.tenant_id = $1 AND s.subject_ref = $2{cond} ORDER BY s.log_id, s.idx LIMIT $3", *args)
    return [_stored(r, True, r["subject_key_id"]) for r in rows[:limit]], len(rows) > limit


# A page of a log for auditors: entry, chain and the payload (to digest) in one statement, by
# the primary keys (log_id, idx) of both tables; row-level security keeps both to the tenant.
ENTRY_PAGE_SQL = ("SELECT e.idx, e.entry, e.chain, p.nonce, p.ciphertext FROM entries e"
                  " LEFT JOIN payloads p ON p.log_id = e.log_id AND p.idx = e.idx"
                  " WHERE e.log_id = $1 AND e.idx >= $2 AND e.idx < $3 ORDER BY e.idx")
ERASURE_EVENTS_SQL = ("SELECT idx, entry FROM entries WHERE log_id = $1"
                      " AND type IN ('erasure', 'retention') ORDER BY idx")


class PostgresInvestigationReader:
    """:class:`InvestigationReader` over PostgreSQL, under row-level security."""

    def __init__(self, *, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def search_calls(self, tenant: str, f: CallFilter, after: Position | None, limit: int
                           ) -> tuple[list[Found], bool]:
        async with tenant_scope(self._pool, tenant) as conn:
            return await search_calls(conn, tenant, f, after, limit)

    async def session_timeline(self, tenant: str, session_id: str, after: Position | None, limit: int
                               ) -> tuple[list[Found], bool]:
        async with tenant_scope(self._pool, tenant) as conn:
            return await session_timeline(conn, tenant, session_id, after, limit)

    async def session_summary(self, tenant: str, session_id: str) -> dict[str, Any] | None:
        async with tenant_scope(self._pool, tenant) as conn:
            row = await conn.fetchrow(
                "SELECT agent_id, first_at, last_at, events, calls, errors, denials FROM sessions"
                " WHERE tenant_id = $1 AND session_id = $2", tenant, session_id)
        if row is None:
            return None
        out = dict(row)
        out["first_at"], out["last_at"] = row["first_at"].isoformat(), row["last_at"].isoformat()
        return out

    async def call_by_event_id(self, tenant: str, event_id: uuid.UUID, *, with_payload: bool
                               ) -> StoredCall | None:
        async with tenant_scope(self._pool, tenant) as conn:
            return await call_by_event_id(conn, event_id, with_payload=with_payload)

    async def subject_calls(self, tenant: str, ref: bytes, after: Position | None, limit: int
                            ) -> tuple[list[StoredCall], bool]:
        async with tenant_scope(self._pool, tenant) as conn:
            return await subject_calls(conn, tenant, ref, after, limit)

    async def entry_page(self, tenant: str, log_id: str, start: int, end: int) -> list[PageRow] | None:
        async with tenant_scope(self._pool, tenant) as conn:
            if await conn.fetchval("SELECT 1 FROM logs WHERE log_id = $1", log_id) is None:
                return None
            rows = await conn.fetch(ENTRY_PAGE_SQL, log_id, start, end)
        return [(r[0], r[1], r[2], None if r[3] is None else payload_digest_bytes(r[3], r[4])) for r in rows]

    async def erasure_events(self, tenant: str, log_id: str) -> list[tuple[int, bytes]] | None:
        async with tenant_scope(self._pool, tenant) as conn:
            if await conn.fetchval("SELECT 1 FROM logs WHERE log_id = $1", log_id) is None:
                return None
            rows = await conn.fetch(ERASURE_EVENTS_SQL, log_id)
        return [(r["idx"], bytes(r["entry"])) for r in rows]
