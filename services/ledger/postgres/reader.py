""":class:`~services.ledger.reader.LedgerReader` over PostgreSQL.

Every read runs in a transaction as the ``sealtrail_reader`` role with ``sealtrail.tenant`` set, so
PostgreSQL's row-level security, not this code, keeps one tenant from another's logs.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from sealtrail.core.tlogproof import format_proof
from sealtrail.errors import InvalidInputError, NotFoundError
from sealtrail.infra.pgerrors import translated
from sealtrail.infra.postgres import Conn
from services.ledger.postgres import tree as tree_postgres
from services.ledger.reader import (
    MAX_ENTRIES_PER_READ,
    LogInfo,
    PublishedKey,
    StoredCheckpoint,
    StoredEntry,
    ceil_ts,
    check_size,
)


class PostgresLedgerReader:
    """:class:`LedgerReader` over the ledger's PostgreSQL tables."""

    def __init__(self, *, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @asynccontextmanager
    async def _as_tenant(self, tenant: str) -> AsyncIterator[Conn]:
        with translated("read the ledger"):
            async with self._pool.acquire() as conn, conn.transaction(readonly=True):
                await conn.execute("SET LOCAL ROLE sealtrail_reader")
                await conn.execute("SELECT set_config('sealtrail.tenant', $1, true)", tenant)
                yield conn

    async def logs(self, tenant: str) -> list[LogInfo]:
        async with self._as_tenant(tenant) as conn:
            rows = await conn.fetch("SELECT log_id, origin, size FROM logs ORDER BY log_id")
        return [LogInfo(r["log_id"], r["origin"], r["size"]) for r in rows]

    async def _size(self, conn: Conn, log_id: str) -> int:
        size = await conn.fetchval("SELECT size FROM logs WHERE log_id = $1", log_id)
        if size is None:
            raise NotFoundError("no such log in this tenant")
        return int(size)

    async def latest_checkpoint(self, tenant: str, log_id: str) -> StoredCheckpoint:
        async with self._as_tenant(tenant) as conn:
            await self._size(conn, log_id)
            row = await conn.fetchrow(
                "SELECT tree_size, note, signed_at FROM checkpoints WHERE log_id = $1"
                " ORDER BY tree_size DESC LIMIT 1", log_id)
        if row is None:
            raise NotFoundError("the log has no signed checkpoint yet")
        return StoredCheckpoint(log_id, row["tree_size"], row["note"], row["signed_at"])

    async def checkpoints(self, tenant: str, log_id: str, first: int, last: int) -> list[StoredCheckpoint]:
        async with self._as_tenant(tenant) as conn:
            await self._size(conn, log_id)
            rows = await conn.fetch(
                "SELECT tree_size, note, signed_at FROM checkpoints WHERE log_id = $1"
                " AND tree_size BETWEEN $2 AND $3 ORDER BY tree_size LIMIT $4",
                log_id, first, last, MAX_ENTRIES_PER_READ)
        return [StoredCheckpoint(log_id, r["tree_size"], r["note"], r["signed_at"]) for r in rows]

    async def entries(self, tenant: str, log_id: str, start: int, end: int) -> list[StoredEntry]:
        if not 0 <= start <= end or end - start > MAX_ENTRIES_PER_READ:
            raise InvalidInputError(f"need 0 <= start <= end and at most {MAX_ENTRIES_PER_READ} entries")
        async with self._as_tenant(tenant) as conn:
            await self._size(conn, log_id)
            rows = await conn.fetch(
                "SELECT idx, entry, chain FROM entries WHERE log_id = $1 AND idx >= $2 AND idx < $3"
                " ORDER BY idx", log_id, start, end)
        return [StoredEntry(r["idx"], r["entry"], r["chain"]) for r in rows]

    async def inclusion_proof(self, tenant: str, log_id: str, index: int, size: int) -> list[bytes]:
        async with self._as_tenant(tenant) as conn:
            check_size(size, await self._size(conn, log_id))
            return await tree_postgres.inclusion_proof(conn, log_id, index, size)

    async def consistency_proof(self, tenant: str, log_id: str, size1: int, size2: int) -> list[bytes]:
        async with self._as_tenant(tenant) as conn:
            check_size(size2, await self._size(conn, log_id))
            return await tree_postgres.consistency_proof(conn, log_id, size1, size2)

    async def tlog_proof(self, tenant: str, event_id: uuid.UUID) -> str:
        async with self._as_tenant(tenant) as conn:
            hit = await conn.fetchrow("SELECT log_id, idx FROM entries WHERE event_id = $1 LIMIT 1", event_id)
            if hit is None:
                raise NotFoundError("no such event in this tenant's logs")
            cp = await conn.fetchrow(
                "SELECT tree_size, note FROM checkpoints WHERE log_id = $1 AND tree_size > $2"
                " ORDER BY tree_size DESC LIMIT 1", hit["log_id"], hit["idx"])
            if cp is None:
                raise NotFoundError("the event is logged but no signed checkpoint covers it yet")
            proof = await tree_postgres.inclusion_proof(conn, hit["log_id"], hit["idx"], cp["tree_size"])
        return format_proof(hit["idx"], proof, cp["note"])

    async def published_keys(self) -> list[PublishedKey]:
        async with self._pool.acquire() as conn:
            rows = await conn.fetch("SELECT purpose, vkey, not_before, not_after FROM signing_keys"
                                    " ORDER BY not_before, purpose")
        return [PublishedKey(r["purpose"], r["vkey"], int(r["not_before"].timestamp()),
                             ceil_ts(r["not_after"])) for r in rows]
