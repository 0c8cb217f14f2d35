"""The PostgreSQL key store, bare and behind the key cache, passes the key-store contract."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable

import asyncpg
import pytest

from sealtrail.core.keystore import KeyStore
from sealtrail.core.sealing import DataKey, Kek
from sealtrail.infra.keycache import CachingKeyStore
from sealtrail.infra.keystore_postgres import PostgresKeyStore
from sealtrail.infra.postgres import migrate_url
from tests.contract.keystore_contract import KeyStoreContract


class _TenantsOnDemand(PostgresKeyStore):
    """The adapter as it is, plus a tenant row for each tenant the contract invents.

    ``data_keys`` references ``tenants``; in production a tenant exists before any key. The
    contract makes up tenant names freely, so this test-only subclass inserts them first.
    """

    def __init__(self, *, pool: asyncpg.Pool, kek: Kek) -> None:
        super().__init__(pool=pool, kek=kek)
        self._db = pool

    async def _tenant(self, tenant: str) -> None:
        await self._db.execute(
            "INSERT INTO tenants (tenant_id, index_key, index_key_kek) VALUES ($1, '\\x00', 'test')"
            " ON CONFLICT DO NOTHING", tenant)

    async def get_or_create_subject_key(self, tenant: str, subject_ref: bytes) -> DataKey:
        await self._tenant(tenant)
        return await super().get_or_create_subject_key(tenant, subject_ref)

    async def get_or_create_period_key(self, tenant: str, period: str) -> DataKey:
        await self._tenant(tenant)
        return await super().get_or_create_period_key(tenant, period)

    async def get_keys(self, tenant: str, key_ids: Iterable[str]) -> dict[str, DataKey | None]:
        return await super().get_keys(tenant, key_ids)


@pytest.fixture
async def pg_pool(fresh_db_url: str) -> AsyncIterator[asyncpg.Pool]:
    await migrate_url(fresh_db_url)
    pool = await asyncpg.create_pool(fresh_db_url, min_size=1, max_size=20)
    assert pool is not None
    try:
        yield pool
    finally:
        await pool.close()


class TestPostgresKeyStore(KeyStoreContract):
    @pytest.fixture
    def store(self, pg_pool: asyncpg.Pool) -> KeyStore:
        return _TenantsOnDemand(pool=pg_pool, kek=Kek.generate())


class TestCachedPostgresKeyStore(KeyStoreContract):
    @pytest.fixture
    def store(self, pg_pool: asyncpg.Pool) -> KeyStore:
        return CachingKeyStore(inner=_TenantsOnDemand(pool=pg_pool, kek=Kek.generate()), ttl_s=30.0)


async def test_stored_keys_are_wrapped_and_erasure_unlinks(pg_pool: asyncpg.Pool) -> None:
    """The table never holds a key's secret in clear, and an erased subject key keeps neither
    its wrapped secret nor its subject_ref."""
    store = _TenantsOnDemand(pool=pg_pool, kek=Kek.generate())
    ref = b"r" * 32
    key = await store.get_or_create_subject_key("t-wrap", ref)
    row = await pg_pool.fetchrow("SELECT wrapped, kek_id FROM data_keys WHERE key_id = $1", key.key_id)
    assert row is not None and key.secret not in bytes(row["wrapped"]) and row["kek_id"]
    await store.erase_subject("t-wrap", ref)
    row = await pg_pool.fetchrow(
        "SELECT wrapped, kek_id, subject_ref, state FROM data_keys WHERE key_id = $1", key.key_id)
    assert row is not None
    assert (row["wrapped"], row["kek_id"], row["subject_ref"], row["state"]) == (None, None, None, "erased")


async def test_another_kek_cannot_read_keys(pg_pool: asyncpg.Pool) -> None:
    """Keys wrapped under one KEK do not open under another (the store fails, never guesses)."""
    from sealtrail.errors import SealingError

    await _TenantsOnDemand(pool=pg_pool, kek=Kek.generate()).get_or_create_period_key("t-kek", "2025-02")
    with pytest.raises(SealingError):
        await _TenantsOnDemand(pool=pg_pool, kek=Kek.generate()).get_or_create_period_key("t-kek", "2025-02")


async def test_cache_invalidate_drops_announced_keys(pg_pool: asyncpg.Pool) -> None:
    """A key erased by another process stays cached only until invalidate() is called for it."""
    inner = _TenantsOnDemand(pool=pg_pool, kek=Kek.generate())
    cache = CachingKeyStore(inner=inner, ttl_s=60.0)
    ref = b"s" * 32
    key = await cache.get_or_create_subject_key("t-cache", ref)
    erased = await inner.erase_subject("t-cache", ref)  # "another process"
    assert (await cache.get_or_create_subject_key("t-cache", ref)).key_id == key.key_id
    cache.invalidate(tenant="t-cache", key_ids=erased)
    assert (await cache.get_or_create_subject_key("t-cache", ref)).key_id != key.key_id
