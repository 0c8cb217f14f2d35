"""Database access of the query service: tenant-scoped read transactions and tenant index keys.

Reads run in a read-only transaction as the ``sealtrail_reader`` role with ``sealtrail.tenant``
set (one statement), so PostgreSQL's row-level security, not this code, keeps one tenant from
another's rows, exactly as ``services.ledger.reader`` does. Writes (erasure, holds, retention)
run as the service's own role and name the tenant in every statement.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from sealtrail.infra.pgerrors import translated
from sealtrail.infra.postgres import Conn

_SCOPE_SQL = "SELECT set_config('role', 'sealtrail_reader', true), set_config('sealtrail.tenant', $1, true)"


@asynccontextmanager
async def tenant_scope(pool: asyncpg.Pool, tenant: str) -> AsyncIterator[Conn]:
    """A read-only transaction that sees only ``tenant``'s rows; driver errors are translated."""
    with translated("read"):
        async with pool.acquire() as conn, conn.transaction(readonly=True):
            await conn.execute(_SCOPE_SQL, tenant)
            yield conn


