"""SQLite adapter of :class:`~sealtrail.infra.auth.AuthStore` (tables ``tenants``, ``api_keys``)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sealtrail.errors import NotFoundError
from sealtrail.infra.auth import ApiKey, Role, Tenant
from sealtrail.infra.sqlite import (
    SqliteDatabase,
    from_db_time,
    from_db_time_or_none,
    to_db_time,
    translated,
)

_KEY_COLUMNS = "key_id, tenant_id, role, secret_hash, label, created_at, expires_at, revoked_at"
_TENANT_COLUMNS = "tenant_id, created_at, index_key, index_key_kek, retention_months"

_Row = tuple[Any, ...]


def _key(row: _Row) -> ApiKey:
    key_id, tenant_id, role, secret_hash, label, created_at, expires_at, revoked_at = row
    return ApiKey(
        key_id=key_id, tenant_id=tenant_id, role=Role(role), secret_hash=bytes(secret_hash), label=label,
        created_at=from_db_time(created_at), expires_at=from_db_time_or_none(expires_at),
        revoked_at=from_db_time_or_none(revoked_at),
    )


def _tenant(row: _Row) -> Tenant:
    tenant_id, created_at, index_key, index_key_kek, retention_months = row
    return Tenant(tenant_id=tenant_id, created_at=from_db_time(created_at),
                  wrapped_index_key=bytes(index_key), kek_id=index_key_kek,
                  retention_months=retention_months)


def _opt_time(t: datetime | None) -> str | None:
    return None if t is None else to_db_time(t)


def _insert_key(conn: sqlite3.Connection, key: ApiKey) -> None:
    conn.execute(
        f"INSERT INTO api_keys ({_KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (key.key_id, key.tenant_id, key.role.value, key.secret_hash, key.label, to_db_time(key.created_at),
         _opt_time(key.expires_at), _opt_time(key.revoked_at)),
    )


def _revoke(conn: sqlite3.Connection, key_id: str, at: datetime) -> _Row | None:
    when = to_db_time(at)
    row: _Row | None = conn.execute(
        "UPDATE api_keys SET revoked_at = min(coalesce(revoked_at, ?), ?) WHERE key_id = ?"
        f" RETURNING {_KEY_COLUMNS}", (when, when, key_id),
    ).fetchone()
    return row


class SqliteAuthStore:
    """Tenants and API keys in SQLite; every write is durable when it returns."""

    def __init__(self, *, db: SqliteDatabase) -> None:
        self._db = db

    async def insert_tenant(self, tenant: Tenant) -> None:
        row = (tenant.tenant_id, to_db_time(tenant.created_at), tenant.wrapped_index_key, tenant.kek_id,
               tenant.retention_months)
        with translated("create tenant"):
            await self._db.write(lambda c: c.execute(
                f"INSERT INTO tenants ({_TENANT_COLUMNS}) VALUES (?, ?, ?, ?, ?)", row))

    async def get_tenant(self, tenant_id: str) -> Tenant:
        with translated("read tenant"):
            row = await self._db.read(lambda c: c.execute(
                f"SELECT {_TENANT_COLUMNS} FROM tenants WHERE tenant_id = ?", (tenant_id,)).fetchone())
        if row is None:
            raise NotFoundError("no such tenant")
        return _tenant(row)

    async def list_tenants(self) -> Sequence[Tenant]:
        with translated("list tenants"):
            rows = await self._db.read(lambda c: c.execute(
                f"SELECT {_TENANT_COLUMNS} FROM tenants ORDER BY tenant_id").fetchall())
        return [_tenant(r) for r in rows]

    async def insert_key(self, key: ApiKey) -> None:
        with translated("create API key"):
            await self._db.write(lambda c: _insert_key(c, key))

    async def get_key(self, key_id: str) -> ApiKey | None:
        with translated("read API key"):
            row = await self._db.read(lambda c: c.execute(
                f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE key_id = ?", (key_id,)).fetchone())
        return None if row is None else _key(row)

    async def list_keys(self, tenant_id: str) -> Sequence[ApiKey]:
        with translated("list API keys"):
            rows = await self._db.read(lambda c: c.execute(
                f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE tenant_id = ? ORDER BY created_at, key_id",
                (tenant_id,)).fetchall())
        return [_key(r) for r in rows]

    async def revoke_key(self, key_id: str, *, at: datetime) -> ApiKey:
        with translated("revoke API key"):
            row = await self._db.write(lambda c: _revoke(c, key_id, at))
        if row is None:
            raise NotFoundError("no such API key")
        return _key(row)

    async def replace_key(self, old_key_id: str, new: ApiKey, *, at: datetime) -> None:
        def replace(conn: sqlite3.Connection) -> None:
            if _revoke(conn, old_key_id, at) is None:
                raise NotFoundError("no such API key")
            _insert_key(conn, new)

        with translated("rotate API key"):
            await self._db.write(replace)

    async def ping(self) -> None:
        with translated("ping"):
            await self._db.read(lambda c: c.execute("SELECT 1").fetchone())
