"""The investigation read port (calls, sessions, one call, a subject's calls, payload digests,
a log's erasure events) and its PostgreSQL adapter.

The PostgreSQL adapter runs each read in :func:`services.query.db.tenant_scope` (read-only, as
``sealtrail_reader`` with ``sealtrail.tenant`` set: row-level security keeps tenants apart) with
the statements of :mod:`services.query.search`. The SQLite adapter is
:class:`services.query.investigations_sqlite.SqliteInvestigationReader`.
"""

from __future__ import annotations

import uuid
from typing import Any, Protocol

import asyncpg
import blake3

from services.query import search
from services.query.cursor import Position
from services.query.db import tenant_scope
from services.query.search import CallFilter, Found, StoredCall


class InvestigationReader(Protocol):
    """Tenant-scoped reads of entries, payloads and the projector's subject index and sessions.

    Every method MUST see only ``tenant``'s rows: another tenant's log, entry or session MUST be
    indistinguishable from a missing one. Headers MUST be the logged entry bytes, parsed, never
    rebuilt from column copies. Pages MUST be keyset pages in a total order (newest first for
    searches, oldest first for timelines, log order for subjects) returning at most ``limit``
    items and whether more follow. Nothing here writes. Driver errors MUST be translated into
    :mod:`sealtrail.errors` types.
    """

    async def search_calls(self, tenant: str, f: CallFilter, after: Position | None, limit: int
                           ) -> tuple[list[Found], bool]: ...
    async def session_timeline(self, tenant: str, session_id: str, after: Position | None, limit: int
                               ) -> tuple[list[Found], bool]: ...
    async def session_summary(self, tenant: str, session_id: str) -> dict[str, Any] | None:
        """The projector's row of the session (times as ISO 8601), or None."""
        ...
    async def call_by_event_id(self, tenant: str, event_id: uuid.UUID, *, with_payload: bool
                               ) -> StoredCall | None: ...
    async def subject_calls(self, tenant: str, ref: bytes, after: Position | None, limit: int
                            ) -> tuple[list[StoredCall], bool]: ...
    async def payload_digests(self, tenant: str, log_id: str, start: int, end: int) -> dict[int, bytes]:
        """BLAKE3(nonce || ciphertext) of each stored payload with index in ``[start, end)``."""
        ...
    async def erasure_events(self, tenant: str, log_id: str) -> list[tuple[int, bytes]] | None:
        """(index, entry bytes) of the log's erasure and retention events; None if no such log."""
        ...


# Served by the partial index entries_system_events (migration 0008).
ERASURE_EVENTS_SQL = ("SELECT idx, entry FROM entries WHERE log_id = $1"
                      " AND type IN ('erasure', 'retention') ORDER BY idx")


def digest(nonce: bytes, ciphertext: bytes) -> bytes:
    return blake3.blake3(nonce + ciphertext).digest()


class PostgresInvestigationReader:
    """:class:`InvestigationReader` over PostgreSQL, under row-level security."""

    def __init__(self, *, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def search_calls(self, tenant: str, f: CallFilter, after: Position | None, limit: int
                           ) -> tuple[list[Found], bool]:
        async with tenant_scope(self._pool, tenant) as conn:
            return await search.search_calls(conn, tenant, f, after, limit)

    async def session_timeline(self, tenant: str, session_id: str, after: Position | None, limit: int
                               ) -> tuple[list[Found], bool]:
        async with tenant_scope(self._pool, tenant) as conn:
            return await search.session_timeline(conn, tenant, session_id, after, limit)

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
            return await search.call_by_event_id(conn, event_id, with_payload=with_payload)

    async def subject_calls(self, tenant: str, ref: bytes, after: Position | None, limit: int
                            ) -> tuple[list[StoredCall], bool]:
        async with tenant_scope(self._pool, tenant) as conn:
            return await search.subject_calls(conn, tenant, ref, after, limit)

    async def payload_digests(self, tenant: str, log_id: str, start: int, end: int) -> dict[int, bytes]:
        async with tenant_scope(self._pool, tenant) as conn:
            rows = await conn.fetch("SELECT idx, nonce, ciphertext FROM payloads WHERE log_id = $1"
                                    " AND idx >= $2 AND idx < $3", log_id, start, end)
        return {r["idx"]: digest(r["nonce"], r["ciphertext"]) for r in rows}

    async def erasure_events(self, tenant: str, log_id: str) -> list[tuple[int, bytes]] | None:
        async with tenant_scope(self._pool, tenant) as conn:
            if await conn.fetchval("SELECT 1 FROM logs WHERE log_id = $1", log_id) is None:
                return None
            rows = await conn.fetch(ERASURE_EVENTS_SQL, log_id)
        return [(r["idx"], bytes(r["entry"])) for r in rows]
