""":class:`~services.ledger.reader.LedgerReader` over the ledger's SQLite tables (embedded default).

SQLite has no row-level security, so tenant isolation is enforced here, in the queries: the
log is looked up together with its tenant before any of its rows are read, and lookups by event
id name the tenant. A log of another tenant is indistinguishable from a missing one. Import this
class through :mod:`services.ledger.reader`, the ledger's published interface.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable
from typing import TypeVar

from sealtrail.core.tlogproof import format_proof
from sealtrail.errors import InvalidInputError, NotFoundError
from sealtrail.infra.sqlite import SqliteDatabase, from_db_time, from_db_time_or_none, translated
from services.ledger.reader import (
    MAX_ENTRIES_PER_READ,
    LogInfo,
    PublishedKey,
    StoredCheckpoint,
    StoredEntry,
    ceil_ts,
    check_size,
)
from services.ledger.sqlite import tree as tree_sqlite

T = TypeVar("T")

# An entry's position by event id (tenant, tenant, event id): served by UNIQUE (log_id, event_id),
# one probe per log of the tenant (migration 0015 dropped the index on (tenant_id, event_id)). The
# unary + keeps the planner off the indexes that lead with tenant_id, which would read every entry.
EVENT_SQL = ("SELECT log_id, idx FROM entries WHERE log_id IN (SELECT log_id FROM logs WHERE tenant_id = ?)"
             " AND +tenant_id = ? AND event_id = ? LIMIT 1")


def _size(conn: sqlite3.Connection, tenant: str, log_id: str) -> int:
    row = conn.execute("SELECT size FROM logs WHERE log_id = ? AND tenant_id = ?",
                       (log_id, tenant)).fetchone()
    if row is None:
        raise NotFoundError("no such log in this tenant")
    return int(row[0])


def _checkpoint(log_id: str, row: tuple[int, str, str]) -> StoredCheckpoint:
    return StoredCheckpoint(log_id, row[0], row[1], from_db_time(row[2]))


class SqliteLedgerReader:
    """Tenant-scoped reads of logs, checkpoints, entries and proofs from SQLite."""

    def __init__(self, *, db: SqliteDatabase) -> None:
        self._db = db

    async def _read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        with translated("ledger read"):
            return await self._db.read(work)

    async def logs(self, tenant: str) -> list[LogInfo]:
        rows = await self._read(lambda c: c.execute(
            "SELECT log_id, origin, size FROM logs WHERE tenant_id = ? ORDER BY log_id",
            (tenant,)).fetchall())
        return [LogInfo(*r) for r in rows]

    async def latest_checkpoint(self, tenant: str, log_id: str) -> StoredCheckpoint:
        def work(c: sqlite3.Connection) -> tuple[int, str, str] | None:
            _size(c, tenant, log_id)
            row: tuple[int, str, str] | None = c.execute(
                "SELECT tree_size, note, signed_at FROM checkpoints WHERE log_id = ?"
                " ORDER BY tree_size DESC LIMIT 1", (log_id,)).fetchone()
            return row

        row = await self._read(work)
        if row is None:
            raise NotFoundError("the log has no signed checkpoint yet")
        return _checkpoint(log_id, row)

    async def checkpoints(self, tenant: str, log_id: str, first: int, last: int) -> list[StoredCheckpoint]:
        def work(c: sqlite3.Connection) -> list[tuple[int, str, str]]:
            _size(c, tenant, log_id)
            return c.execute(
                "SELECT tree_size, note, signed_at FROM checkpoints WHERE log_id = ?"
                " AND tree_size BETWEEN ? AND ? ORDER BY tree_size LIMIT ?",
                (log_id, first, last, MAX_ENTRIES_PER_READ)).fetchall()

        return [_checkpoint(log_id, r) for r in await self._read(work)]

    async def entries(self, tenant: str, log_id: str, start: int, end: int) -> list[StoredEntry]:
        if not 0 <= start <= end or end - start > MAX_ENTRIES_PER_READ:
            raise InvalidInputError(f"need 0 <= start <= end and at most {MAX_ENTRIES_PER_READ} entries")

        def work(c: sqlite3.Connection) -> list[tuple[int, bytes, bytes]]:
            _size(c, tenant, log_id)
            return c.execute(
                "SELECT idx, entry, chain FROM entries WHERE log_id = ? AND idx >= ? AND idx < ?"
                " ORDER BY idx", (log_id, start, end)).fetchall()

        return [StoredEntry(i, bytes(e), bytes(ch)) for i, e, ch in await self._read(work)]

    async def inclusion_proof(self, tenant: str, log_id: str, index: int, size: int) -> list[bytes]:
        def work(c: sqlite3.Connection) -> list[bytes]:
            check_size(size, _size(c, tenant, log_id))
            return tree_sqlite.inclusion_proof(c, log_id, index, size)

        return await self._read(work)

    async def consistency_proof(self, tenant: str, log_id: str, size1: int, size2: int) -> list[bytes]:
        def work(c: sqlite3.Connection) -> list[bytes]:
            check_size(size2, _size(c, tenant, log_id))
            return tree_sqlite.consistency_proof(c, log_id, size1, size2)

        return await self._read(work)

    async def tlog_proof(self, tenant: str, event_id: uuid.UUID) -> str:
        def work(c: sqlite3.Connection) -> str:
            hit = c.execute(EVENT_SQL, (tenant, tenant, str(event_id))).fetchone()
            if hit is None:
                raise NotFoundError("no such event in this tenant's logs")
            log_id, idx = hit
            cp = c.execute("SELECT tree_size, note FROM checkpoints WHERE log_id = ? AND tree_size > ?"
                           " ORDER BY tree_size DESC LIMIT 1", (log_id, idx)).fetchone()
            if cp is None:
                raise NotFoundError("the event is logged but no signed checkpoint covers it yet")
            return format_proof(idx, tree_sqlite.inclusion_proof(c, log_id, idx, cp[0]), cp[1])

        return await self._read(work)

    async def published_keys(self) -> list[PublishedKey]:
        rows = await self._read(lambda c: c.execute(
            "SELECT purpose, vkey, not_before, not_after FROM signing_keys ORDER BY not_before, purpose"
        ).fetchall())
        return [PublishedKey(purpose, vkey, int(from_db_time(nb).timestamp()),
                             ceil_ts(from_db_time_or_none(na)))
                for purpose, vkey, nb, na in rows]
