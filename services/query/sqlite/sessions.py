""":class:`~services.query.ports.ConsoleSessionStore` in SQLite (table of migration 0012), for
``sealtrail serve``: every statement runs on the database's own threads."""

from __future__ import annotations

import sqlite3
from typing import Any

from sealtrail.infra.auth import Principal, Role
from sealtrail.infra.sqlite import SqliteDatabase, translated
from services.query.ports import StoredSession

_COLUMNS = "csrf_hash, tenant_id, key_id, role, label, created_at, last_used_at"


def _session(row: tuple[Any, ...]) -> StoredSession:
    csrf, tenant, key_id, role, label, created, last_used = row
    return StoredSession(Principal(key_id=key_id, tenant_id=tenant, role=Role(role), label=label), bytes(csrf),
                         created, last_used)


def _add(conn: sqlite3.Connection, session_hash: bytes, s: StoredSession, max_sessions: int) -> None:
    p = s.principal
    conn.execute(f"INSERT INTO console_sessions (session_hash, {_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                 (session_hash, s.csrf_hash, p.tenant_id, p.key_id, p.role.value, p.label, s.created, s.last_used))
    conn.execute("DELETE FROM console_sessions WHERE session_hash IN (SELECT session_hash FROM console_sessions"
                 " ORDER BY created_at DESC, session_hash LIMIT -1 OFFSET ?)", (max_sessions,))


class SqliteConsoleSessionStore:
    """Console sessions of the embedded ``sealtrail serve``."""

    def __init__(self, *, db: SqliteDatabase) -> None:
        self._db = db

    async def add(self, session_hash: bytes, session: StoredSession, *, max_sessions: int) -> None:
        with translated("open console session"):
            await self._db.write(lambda c: _add(c, session_hash, session, max_sessions))

    async def find(self, session_hash: bytes) -> StoredSession | None:
        with translated("read console session"):
            row = await self._db.read(lambda c: c.execute(
                f"SELECT {_COLUMNS} FROM console_sessions WHERE session_hash = ?", (session_hash,)).fetchone())
        return None if row is None else _session(row)

    async def touch(self, session_hash: bytes, now: float) -> None:
        with translated("record console session use"):
            await self._db.write(lambda c: c.execute(
                "UPDATE console_sessions SET last_used_at = max(last_used_at, ?) WHERE session_hash = ?",
                (now, session_hash)), durable=False)

    async def delete(self, session_hash: bytes) -> None:
        with translated("close console session"):
            await self._db.write(lambda c: c.execute("DELETE FROM console_sessions WHERE session_hash = ?",
                                                     (session_hash,)))

    async def delete_expired(self, now: float, *, idle_s: float, max_age_s: float) -> int:
        with translated("delete expired console sessions"):
            n: int = await self._db.write(lambda c: c.execute(
                "DELETE FROM console_sessions WHERE last_used_at < ? OR created_at < ?",
                (now - idle_s, now - max_age_s)).rowcount)
        return n
