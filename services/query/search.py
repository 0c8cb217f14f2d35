"""Investigation reads over the ledger's ``entries`` table: searches, session timelines, one call.

Every function takes a connection from :func:`services.query.db.tenant_scope`, so row-level
security limits it to one tenant; the tenant is also named in each statement so that the
``(tenant_id, ...)`` indexes are used. Headers are returned exactly as stored in the log (the
entry bytes), never rebuilt from the column copies.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from sealtrail.infra.postgres import Conn
from services.query.cursor import Position

# Query parameter -> entries column; the filters an investigator may combine.
FILTER_COLUMNS: dict[str, str] = {
    "agent": "agent_id", "session": "session_id", "server": "server_id", "tool": "tool_name",
    "tier": "tool_tier", "decision": "decision", "status": "status", "type": "type",
}


@dataclass(frozen=True, slots=True)
class CallFilter:
    """What ``GET /v1/calls`` searches for; None means "any"."""

    equals: dict[str, str]
    occurred_from: datetime | None = None
    occurred_to: datetime | None = None
    subject_ref: bytes | None = None


@dataclass(frozen=True, slots=True)
class Found:
    """One entry: where it is and its header exactly as logged."""

    log_id: str
    idx: int
    occurred_at: datetime
    header: dict[str, Any]

    @property
    def position(self) -> Position:
        return Position(self.occurred_at, self.log_id, self.idx)

    def as_json(self) -> dict[str, Any]:
        return {"log": self.log_id, "index": self.idx, "header": self.header}


def _found(row: asyncpg.Record) -> Found:
    return Found(row["log_id"], row["idx"], row["occurred_at"], orjson.loads(row["entry"]))


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
    sql = (f"SELECT e.log_id, e.idx, e.occurred_at, e.entry FROM entries e{join}"
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
        cond = " AND (occurred_at, log_id, idx) > ($4, $5, $6)"
    rows = await conn.fetch(
        "SELECT log_id, idx, occurred_at, entry FROM entries WHERE tenant_id = $1 AND session_id = $2"
        f"{cond} ORDER BY occurred_at, log_id, idx LIMIT $3", *args)
    return [_found(r) for r in rows[:limit]], len(rows) > limit


@dataclass(frozen=True, slots=True)
class StoredCall:
    """One entry with its stored payload (None when no ciphertext is stored)."""

    found: Found
    key_ids: tuple[str, ...] | None
    nonce: bytes | None
    ciphertext: bytes | None


async def call_by_event_id(conn: Conn, event_id: uuid.UUID, *, with_payload: bool) -> StoredCall | None:
    """The tenant's entry with ``event_id`` (and its ciphertext when asked), or None."""
    payload_cols = ", p.key_ids, p.nonce, p.ciphertext" if with_payload else ""
    payload_join = " LEFT JOIN payloads p ON p.log_id = e.log_id AND p.idx = e.idx" if with_payload else ""
    row = await conn.fetchrow(
        f"SELECT e.log_id, e.idx, e.occurred_at, e.entry{payload_cols} FROM entries e{payload_join}"
        " WHERE e.log_id IN (SELECT log_id FROM logs) AND e.event_id = $1 LIMIT 1", event_id)
    if row is None:
        return None
    return _stored(row, with_payload)


def _stored(row: asyncpg.Record, with_payload: bool) -> StoredCall:
    found = _found(row)
    if not with_payload or row["ciphertext"] is None:
        return StoredCall(found, None, None, None)
    return StoredCall(found, tuple(row["key_ids"]), bytes(row["nonce"]), bytes(row["ciphertext"]))


async def subject_calls(conn: Conn, tenant: str, ref: bytes, after: Position | None,
                        limit: int) -> tuple[list[StoredCall], bool]:
    """The entries the subject index lists for ``ref``, in log order, with their payloads."""
    args: list[object] = [tenant, ref, limit + 1]
    cond = ""
    if after is not None:
        args += [after.log_id, after.idx]
        cond = " AND (s.log_id, s.idx) > ($4, $5)"
    rows = await conn.fetch(
        "SELECT e.log_id, e.idx, e.occurred_at, e.entry, p.key_ids, p.nonce, p.ciphertext"
        " FROM subject_index s JOIN entries e ON e.log_id = s.log_id AND e.idx = s.idx"
        " LEFT JOIN payloads p ON p.log_id = s.log_id AND p.idx = s.idx"
        f" WHERE s.tenant_id = $1 AND s.subject_ref = $2{cond} ORDER BY s.log_id, s.idx LIMIT $3", *args)
    return [_stored(r, True) for r in rows[:limit]], len(rows) > limit
