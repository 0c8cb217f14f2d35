""":class:`~services.query.ports.RetentionStore` in the embedded SQLite database.

Every statement names the tenant (no row-level security in SQLite). The tenant lock is an
asyncio lock in this process: the embedded default is one process, and a second process on the
same file (``sealtrail admin retention run``) is safe anyway, because every step is idempotent
and each chunk is one write transaction. The period's ciphertexts are found through
``payload_keys``; after each chunk the WAL is truncated so no frame keeps a deleted row.
"""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sealtrail.infra.sqlite import SqliteDatabase, db_now, translated
from services.query.sqlite.erasure import delete_sealed_under


class SqliteRetentionStore:
    """Retention runs of SQLite migration 0005 and the deletion of expired ciphertexts."""

    def __init__(self, *, db: SqliteDatabase) -> None:
        self._db = db
        self._locks: dict[str, asyncio.Lock] = {}

    async def tenants(self, tenant: str | None) -> list[tuple[str, int | None]]:
        with translated("read retention settings"):
            rows = await self._db.read(lambda c: c.execute(
                "SELECT tenant_id, retention_months FROM tenants WHERE (?1 IS NULL OR tenant_id = ?1)"
                " ORDER BY tenant_id", (tenant,)).fetchall())
        return [(t, m) for t, m in rows]

    @asynccontextmanager
    async def locked(self, tenant: str) -> AsyncIterator[bool]:
        lock = self._locks.setdefault(tenant, asyncio.Lock())
        if lock.locked():
            yield False
            return
        async with lock:
            yield True

    async def pending_runs(self, tenant: str) -> list[tuple[str, str]]:
        with translated("read retention runs"):
            rows = await self._db.read(lambda c: c.execute(
                "SELECT period, period_key_id FROM retention_runs WHERE tenant_id = ? AND state = 'pending'"
                " ORDER BY period", (tenant,)).fetchall())
        return [(p, k) for p, k in rows]

    async def active_period_keys(self, tenant: str) -> dict[str, str]:
        with translated("read period keys"):
            rows = await self._db.read(lambda c: c.execute(
                "SELECT period, key_id FROM data_keys WHERE tenant_id = ? AND kind = 'period'"
                " AND state = 'active'", (tenant,)).fetchall())
        return {p: k for p, k in rows}

    async def start_run(self, tenant: str, period: str, key_id: str, event_id: str) -> None:
        with translated("start retention run"):
            await self._db.write(lambda c: c.execute(
                "INSERT INTO retention_runs (tenant_id, period, period_key_id, event_id, started_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (tenant_id, period) DO NOTHING",
                (tenant, period, key_id, str(uuid.UUID(event_id)), db_now())))

    async def delete_chunk(self, tenant: str, period: str, key_id: str, limit: int) -> int:
        def run(conn: sqlite3.Connection) -> int:
            count = delete_sealed_under(conn, tenant, [key_id], first_only=True, limit=limit)
            conn.execute("UPDATE retention_runs SET payloads_deleted = payloads_deleted + ?"
                         " WHERE tenant_id = ? AND period = ?", (count, tenant, period))
            return count

        with translated("delete expired payloads"):
            count = await self._db.write(run)
            await self._db.truncate_wal()
        return count

    async def run_state(self, tenant: str, period: str) -> tuple[int, str] | None:
        with translated("read retention run"):
            row = await self._db.read(lambda c: c.execute(
                "SELECT payloads_deleted, event_id FROM retention_runs WHERE tenant_id = ? AND period = ?",
                (tenant, period)).fetchone())
        return None if row is None else (row[0], row[1])

    async def finish_run(self, tenant: str, period: str) -> None:
        with translated("finish retention run"):
            await self._db.write(lambda c: c.execute(
                "UPDATE retention_runs SET state = 'done', done_at = ? WHERE tenant_id = ? AND period = ?",
                (db_now(), tenant, period)))
