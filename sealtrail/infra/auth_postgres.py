"""PostgreSQL adapter of :class:`~sealtrail.infra.auth.AuthStore` (tables ``tenants``, ``api_keys``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from sealtrail.errors import NotFoundError
from sealtrail.infra.auth import ApiKey, Role, Tenant
from sealtrail.infra.pgerrors import translated

# A pool, a connection or a pooled connection: anything with execute/fetchrow.
_Executor = Any

_KEY_COLUMNS = "key_id, tenant_id, role, secret_hash, label, created_at, expires_at, revoked_at"
_TENANT_COLUMNS = "tenant_id, created_at, index_key, index_key_kek, retention_months"


def _key(row: asyncpg.Record) -> ApiKey:
    return ApiKey(
        key_id=row["key_id"], tenant_id=row["tenant_id"], role=Role(row["role"]),
        secret_hash=bytes(row["secret_hash"]), label=row["label"], created_at=row["created_at"],
        expires_at=row["expires_at"], revoked_at=row["revoked_at"],
    )


def _tenant(row: asyncpg.Record) -> Tenant:
    return Tenant(
        tenant_id=row["tenant_id"], created_at=row["created_at"], wrapped_index_key=bytes(row["index_key"]),
        kek_id=row["index_key_kek"], retention_months=row["retention_months"],
    )


class PostgresAuthStore:
    """Tenants and API keys in PostgreSQL, through an asyncpg pool."""

    def __init__(self, *, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def insert_tenant(self, tenant: Tenant) -> None:
        with translated("create tenant"):
            await self._pool.execute(
                "INSERT INTO tenants (tenant_id, created_at, index_key, index_key_kek, retention_months)"
                " VALUES ($1, $2, $3, $4, $5)",
                tenant.tenant_id, tenant.created_at, tenant.wrapped_index_key, tenant.kek_id,
                tenant.retention_months,
            )

    async def get_tenant(self, tenant_id: str) -> Tenant:
        with translated("read tenant"):
            row = await self._pool.fetchrow(
                f"SELECT {_TENANT_COLUMNS} FROM tenants WHERE tenant_id = $1", tenant_id
            )
        if row is None:
            raise NotFoundError("no such tenant")
        return _tenant(row)

    async def list_tenants(self) -> Sequence[Tenant]:
        with translated("list tenants"):
            rows = await self._pool.fetch(f"SELECT {_TENANT_COLUMNS} FROM tenants ORDER BY tenant_id")
        return [_tenant(r) for r in rows]

    async def insert_key(self, key: ApiKey) -> None:
        with translated("create API key"):
            await self._insert_key(self._pool, key)

    @staticmethod
    async def _insert_key(conn: _Executor, key: ApiKey) -> None:
        await conn.execute(
            f"INSERT INTO api_keys ({_KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            key.key_id, key.tenant_id, key.role.value, key.secret_hash, key.label, key.created_at,
            key.expires_at, key.revoked_at,
        )

    async def get_key(self, key_id: str) -> ApiKey | None:
        with translated("read API key"):
            row = await self._pool.fetchrow(f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE key_id = $1", key_id)
        return None if row is None else _key(row)

    async def list_keys(self, tenant_id: str) -> Sequence[ApiKey]:
        with translated("list API keys"):
            rows = await self._pool.fetch(
                f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE tenant_id = $1 ORDER BY created_at, key_id",
                tenant_id,
            )
        return [_key(r) for r in rows]

    async def revoke_key(self, key_id: str, *, at: datetime) -> ApiKey:
        with translated("revoke API key"):
            row = await self._revoke(self._pool, key_id, at)
        if row is None:
            raise NotFoundError("no such API key")
        return _key(row)

    @staticmethod
    async def _revoke(
        conn: _Executor, key_id: str, at: datetime
    ) -> asyncpg.Record | None:
        row: asyncpg.Record | None = await conn.fetchrow(
            "UPDATE api_keys SET revoked_at = LEAST(COALESCE(revoked_at, $2), $2) WHERE key_id = $1"
            f" RETURNING {_KEY_COLUMNS}",
            key_id, at,
        )
        return row

    async def replace_key(self, old_key_id: str, new: ApiKey, *, at: datetime) -> None:
        with translated("rotate API key"):
            async with self._pool.acquire() as conn, conn.transaction():
                if await self._revoke(conn, old_key_id, at) is None:
                    raise NotFoundError("no such API key")
                await self._insert_key(conn, new)

    async def ping(self) -> None:
        with translated("ping"):
            await self._pool.fetchval("SELECT 1")
