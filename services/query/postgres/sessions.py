""":class:`~services.query.ports.ConsoleSessionStore` in PostgreSQL (table of migration 0012).

Sessions are not a tenant's data: the service's own role reads and writes them, by the hash of
the session id. Driver errors are translated here.
"""

from __future__ import annotations

import asyncpg

from sealtrail.infra.auth import Principal, Role
from sealtrail.infra.pgerrors import translated
from services.query.ports import StoredSession

_COLUMNS = "csrf_hash, tenant_id, key_id, role, label, created_at, last_used_at"


def _session(row: asyncpg.Record) -> StoredSession:
    principal = Principal(key_id=row["key_id"], tenant_id=row["tenant_id"], role=Role(row["role"]),
                          label=row["label"])
    return StoredSession(principal, bytes(row["csrf_hash"]), row["created_at"], row["last_used_at"])


class PostgresConsoleSessionStore:
    """Console sessions shared by every query process on this database."""

    def __init__(self, *, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def add(self, session_hash: bytes, session: StoredSession, *, max_sessions: int) -> None:
        p = session.principal
        with translated("open console session"):
            async with self._pool.acquire() as conn, conn.transaction():
                await conn.execute(
                    f"INSERT INTO console_sessions (session_hash, {_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    session_hash, session.csrf_hash, p.tenant_id, p.key_id, p.role.value, p.label, session.created,
                    session.last_used)
                await conn.execute(
                    "DELETE FROM console_sessions WHERE session_hash IN (SELECT session_hash FROM console_sessions"
                    " ORDER BY created_at DESC, session_hash OFFSET $1)", max_sessions)

    async def find(self, session_hash: bytes) -> StoredSession | None:
        with translated("read console session"):
            row = await self._pool.fetchrow(f"SELECT {_COLUMNS} FROM console_sessions WHERE session_hash = $1",
                                            session_hash)
        return None if row is None else _session(row)

    async def touch(self, session_hash: bytes, now: float) -> None:
        with translated("record console session use"):
            await self._pool.execute("UPDATE console_sessions SET last_used_at = greatest(last_used_at, $2)"
                                     " WHERE session_hash = $1", session_hash, now)

    async def delete(self, session_hash: bytes) -> None:
        with translated("close console session"):
            await self._pool.execute("DELETE FROM console_sessions WHERE session_hash = $1", session_hash)

    async def delete_expired(self, now: float, *, idle_s: float, max_age_s: float) -> int:
        with translated("delete expired console sessions"):
            status = await self._pool.execute("DELETE FROM console_sessions WHERE last_used_at < $1 OR created_at < $2",
                                              now - idle_s, now - max_age_s)
        return int(status.rsplit(" ", 1)[-1])
