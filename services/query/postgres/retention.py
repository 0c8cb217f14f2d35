""":class:`~services.query.ports.RetentionStore` in PostgreSQL; the tenant lock is a session advisory lock.

The shredder (:mod:`services.query.shredder`) drives it; the key store expires the period key.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from sealtrail.infra.pgerrors import translated
from services.query.postgres.erasure import rows_affected

_TRY_LOCK = "SELECT pg_try_advisory_lock(hashtextextended('retention:' || $1, 0))"
_UNLOCK = "SELECT pg_advisory_unlock(hashtextextended('retention:' || $1, 0))"


class PostgresRetentionStore:
    """:class:`RetentionStore` in PostgreSQL; the tenant lock is a session advisory lock."""

    def __init__(self, *, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def tenants(self, tenant: str | None) -> list[tuple[str, int | None]]:
        with translated("read retention settings"):
            rows = await self._pool.fetch(
                "SELECT tenant_id, retention_months FROM tenants WHERE ($1::text IS NULL OR tenant_id = $1)"
                " ORDER BY tenant_id", tenant)
        return [(r["tenant_id"], r["retention_months"]) for r in rows]

    @asynccontextmanager
    async def locked(self, tenant: str) -> AsyncIterator[bool]:
        async with self._pool.acquire() as conn:
            if not await conn.fetchval(_TRY_LOCK, tenant):
                yield False
                return
            try:
                yield True
            finally:
                await conn.fetchval(_UNLOCK, tenant)

    async def pending_runs(self, tenant: str) -> list[tuple[str, str]]:
        with translated("read retention runs"):
            rows = await self._pool.fetch("SELECT period, period_key_id FROM retention_runs"
                                          " WHERE tenant_id = $1 AND state = 'pending' ORDER BY period", tenant)
        return [(r["period"], r["period_key_id"]) for r in rows]

    async def active_period_keys(self, tenant: str) -> dict[str, str]:
        with translated("read period keys"):
            rows = await self._pool.fetch("SELECT period, key_id FROM data_keys WHERE tenant_id = $1"
                                          " AND kind = 'period' AND state = 'active'", tenant)
        return {r["period"]: r["key_id"] for r in rows}

    async def start_run(self, tenant: str, period: str, key_id: str, event_id: str) -> None:
        with translated("start retention run"):
            await self._pool.execute(
                "INSERT INTO retention_runs (tenant_id, period, period_key_id, event_id)"
                " VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id, period) DO NOTHING",
                tenant, period, key_id, uuid.UUID(event_id))

    async def delete_chunk(self, tenant: str, period: str, key_id: str, limit: int) -> int:
        with translated("delete expired payloads"):
            async with self._pool.acquire() as conn, conn.transaction():
                status = await conn.execute(
                    "DELETE FROM payloads WHERE ctid = ANY(ARRAY(SELECT ctid FROM payloads"
                    " WHERE tenant_id = $1 AND key_ids && ARRAY[$2::text] AND key_ids[1] = $2 LIMIT $3))",
                    tenant, key_id, limit)
                count = rows_affected(status)
                await conn.execute("UPDATE retention_runs SET payloads_deleted = payloads_deleted + $3"
                                   " WHERE tenant_id = $1 AND period = $2", tenant, period, count)
        return count

    async def run_state(self, tenant: str, period: str) -> tuple[int, str] | None:
        with translated("read retention run"):
            run = await self._pool.fetchrow(
                "SELECT payloads_deleted, event_id FROM retention_runs WHERE tenant_id = $1 AND period = $2",
                tenant, period)
        return None if run is None else (run["payloads_deleted"], str(run["event_id"]))

    async def finish_run(self, tenant: str, period: str) -> None:
        with translated("finish retention run"):
            await self._pool.execute("UPDATE retention_runs SET state = 'done', done_at = now()"
                                     " WHERE tenant_id = $1 AND period = $2", tenant, period)
