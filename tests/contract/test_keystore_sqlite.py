"""The SQLite key store, bare and behind the key cache, passes the key-store contract."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import pytest

from sealtrail.core.keystore import KeyStore
from sealtrail.core.sealing import DataKey, Kek
from sealtrail.errors import SealingError
from sealtrail.infra.keycache import CachingKeyStore
from sealtrail.infra.keystore_sqlite import SqliteKeyStore
from sealtrail.infra.sqlite import SqliteDatabase, open_database
from tests.contract.keystore_contract import KeyStoreContract


class _TenantsOnDemand(SqliteKeyStore):
    """The adapter as it is, plus a tenant row for each tenant the contract invents
    (``data_keys`` references ``tenants``; in production a tenant exists before any key)."""

    def __init__(self, *, db: SqliteDatabase, kek: Kek) -> None:
        super().__init__(db=db, kek=kek)
        self._tenants_db = db

    async def _tenant(self, tenant: str) -> None:
        await self._tenants_db.write(lambda c: c.execute(
            "INSERT INTO tenants (tenant_id, index_key, index_key_kek) VALUES (?, x'00', 'test')"
            " ON CONFLICT DO NOTHING", (tenant,)))

    async def get_or_create_subject_key(self, tenant: str, subject_ref: bytes) -> DataKey:
        await self._tenant(tenant)
        return await super().get_or_create_subject_key(tenant, subject_ref)

    async def get_or_create_period_key(self, tenant: str, period: str) -> DataKey:
        await self._tenant(tenant)
        return await super().get_or_create_period_key(tenant, period)

    async def get_keys(self, tenant: str, key_ids: Iterable[str]) -> dict[str, DataKey | None]:
        return await super().get_keys(tenant, key_ids)


def _files(db: SqliteDatabase) -> bytes:
    return b"".join(p.read_bytes() for p in db.path.parent.glob(f"{db.path.name}*"))


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[SqliteDatabase]:
    database = await open_database(tmp_path / "keys.db")
    try:
        yield database
    finally:
        await database.close()


class TestSqliteKeyStore(KeyStoreContract):
    @pytest.fixture
    def store(self, db: SqliteDatabase) -> KeyStore:
        return _TenantsOnDemand(db=db, kek=Kek.generate())


class TestCachedSqliteKeyStore(KeyStoreContract):
    @pytest.fixture
    def store(self, db: SqliteDatabase) -> KeyStore:
        return CachingKeyStore(inner=_TenantsOnDemand(db=db, kek=Kek.generate()), ttl_s=30.0)


async def test_stored_keys_are_wrapped_and_erasure_leaves_no_trace(db: SqliteDatabase) -> None:
    """The table never holds a secret in clear; after erasure neither the wrapped secret nor the
    subject_ref is in the row, and neither is anywhere in the database or WAL files."""
    store = _TenantsOnDemand(db=db, kek=Kek.generate())
    ref = b"r" * 32
    key = await store.get_or_create_subject_key("t-wrap", ref)
    wrapped = await db.read(lambda c: c.execute(
        "SELECT wrapped FROM data_keys WHERE key_id = ?", (key.key_id,)).fetchone()[0])
    assert key.secret not in wrapped
    assert wrapped in _files(db) and ref in _files(db)  # so the check below is not vacuous
    await store.erase_subject("t-wrap", ref)
    row = await db.read(lambda c: c.execute(
        "SELECT wrapped, kek_id, subject_ref, state FROM data_keys WHERE key_id = ?", (key.key_id,)).fetchone())
    assert row == (None, None, None, "erased")
    assert wrapped not in _files(db) and ref not in _files(db)


async def test_another_kek_cannot_read_keys(db: SqliteDatabase) -> None:
    """Keys wrapped under one KEK do not open under another (the store fails, never guesses)."""
    await _TenantsOnDemand(db=db, kek=Kek.generate()).get_or_create_period_key("t-kek", "2025-02")
    with pytest.raises(SealingError):
        await _TenantsOnDemand(db=db, kek=Kek.generate()).get_or_create_period_key("t-kek", "2025-02")


async def test_two_processes_converge(tmp_path: Path) -> None:
    """Two database objects on one file (as two processes would be) converge on one key."""
    first, second = await open_database(tmp_path / "k.db"), await open_database(tmp_path / "k.db")
    try:
        kek = Kek.generate()
        a, b = _TenantsOnDemand(db=first, kek=kek), _TenantsOnDemand(db=second, kek=kek)
        keys = await asyncio.gather(*(s.get_or_create_subject_key("t-two", b"s" * 32) for s in [a, b] * 10))
        assert len({k.key_id for k in keys}) == 1
    finally:
        await first.close()
        await second.close()
