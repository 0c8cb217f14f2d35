"""The query side's storage over both databases, opened the same way for the contract suites.

A :class:`QueryBackend` bundles one database's :class:`~services.query.stores.QueryStores`, the
ledger store that writes entries into it, and the few raw reads the contracts check (row counts).
Records are appended exactly as the ledger commits them, sealed under real period and subject
keys from the backend's key store (the ciphertexts are random bytes: nothing here decrypts).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import asyncpg
import httpx
from pydantic import SecretStr

from sealtrail.core.keystore import period_of
from sealtrail.core.note import Ed25519Signer
from sealtrail.core.record import SealedRecord
from sealtrail.core.sealing import Kek
from sealtrail.infra.apikeys import KeyAdmin
from sealtrail.infra.bus import TopicSpec
from sealtrail.infra.kek import IndexKeyWrapper
from sealtrail.infra.locallog import LocalLog
from sealtrail.infra.postgres import migrate_url
from sealtrail.infra.settings import Settings
from sealtrail.infra.sqlite import SqliteDatabase, open_database
from services.ledger.ports import LedgerStore, PartitionCommit
from services.ledger.postgres.store import PostgresLedgerStore
from services.ledger.sequencer import LogHead, sequence
from services.ledger.sqlite.store import SqliteLedgerStore
from services.projector.ports import ProjectorStore
from services.projector.postgres import PostgresProjectorStore
from services.projector.sqlite import SqliteProjectorStore
from services.query.app import create_app
from services.query.config import QueryOptions
from services.query.service import QueryParts
from services.query.stores import QueryStores, postgres_stores_on, sqlite_stores
from tests.support.analytics import ts
from tests.support.ledger import uuid7


class QueryRaw(Protocol):
    """Direct reads for checks no port offers on purpose."""

    async def count(self, table: str, where: str = "") -> int:
        """Rows of ``table`` (``where`` is a trusted SQL condition without parameters)."""
        ...
    async def set_retention(self, tenant: str, months: int | None) -> None: ...
    async def tamper(self, sql: str) -> int:
        """Run one trusted UPDATE/DELETE as the database owner would (an insider); rows changed."""
        ...


class _PgRaw:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def count(self, table: str, where: str = "") -> int:
        return int(await self._pool.fetchval(f"SELECT count(*) FROM {table}{' WHERE ' + where if where else ''}"))

    async def set_retention(self, tenant: str, months: int | None) -> None:
        await self._pool.execute("UPDATE tenants SET retention_months = $2 WHERE tenant_id = $1", tenant, months)

    async def tamper(self, sql: str) -> int:
        status = await self._pool.execute(sql)
        return int(status.split()[-1])


class SqliteRaw:
    """Raw reads of a SQLite database."""

    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def count(self, table: str, where: str = "") -> int:
        sql = f"SELECT count(*) FROM {table}{' WHERE ' + where if where else ''}"
        return int(await self._db.read(lambda c: c.execute(sql).fetchone()[0]))

    async def set_retention(self, tenant: str, months: int | None) -> None:
        await self._db.write(lambda c: c.execute("UPDATE tenants SET retention_months = ? WHERE tenant_id = ?",
                                                 (months, tenant)))

    async def tamper(self, sql: str) -> int:
        return int(await self._db.write(lambda c: c.execute(sql).rowcount))


@dataclass
class QueryBackend:
    name: str
    stores: QueryStores
    ledger: LedgerStore
    raw: QueryRaw
    projector: ProjectorStore
    kek_hex: str = field(default_factory=lambda: os.urandom(32).hex())
    index_keys: dict[str, bytes] = field(default_factory=dict)

    @property
    def kek(self) -> Kek:
        return Kek(bytes.fromhex(self.kek_hex))

    async def tenant(self, tenant: str) -> None:
        """Create ``tenant`` through the admin API and remember its index key."""
        wrapper = IndexKeyWrapper(kek=self.kek, tenant=tenant)
        await KeyAdmin(store=self.stores.auth).create_tenant(tenant, kek=wrapper)
        row = await self.stores.auth.get_tenant(tenant)
        self.index_keys[tenant] = wrapper.unwrap(row.wrapped_index_key, kek_id=row.kek_id)

    async def record(self, tenant: str, at: datetime, fields: dict[str, Any], *,
                     subject_refs: Sequence[bytes] = ()) -> SealedRecord:
        """A record sealed (in name) under the period key of ``at`` and the subjects' keys."""
        period = await self.stores.keys.get_or_create_period_key(tenant, period_of(at))
        subjects = sorted([(await self.stores.keys.get_or_create_subject_key(tenant, r)).key_id
                           for r in subject_refs])
        header = {"event_id": uuid7(), "occurred_at": ts(at), "received_at": ts(at), "tenant": tenant,
                  "gateway_id": "gw-test", **fields, "key_ids": [period.key_id, *subjects],
                  "payload_digest": "blake3:" + os.urandom(32).hex(), "payload_size": 2}
        return SealedRecord(tenant, header, os.urandom(24), os.urandom(16))

    async def append(self, log_id: str, records: Sequence[SealedRecord]) -> None:
        """Append ``records`` to ``log_id`` (tenant = log id) exactly as the ledger commits them."""
        store, topic = self.ledger, f"direct.{log_id}"
        heads = await store.load_heads([log_id])
        head = heads.get(log_id) or LogHead.empty(log_id=log_id, tenant_id=log_id, origin=f"test/{log_id}")
        new = [] if log_id in heads else [head]
        offset = (await store.load_offsets(group="direct", topic=topic, partitions=[0])).get(0)
        batch = sequence(head, records)
        await store.commit(PartitionCommit("direct", topic, 0, offset, (offset or 0) + len(batch.entries),
                                           [batch], new))


@asynccontextmanager
async def postgres_query_backend(url: str) -> AsyncIterator[QueryBackend]:
    """The query side's PostgreSQL adapters over the (migrated) database at ``url``."""
    await migrate_url(url)
    pool = await asyncpg.create_pool(url, min_size=1, max_size=10)
    assert pool is not None
    kek_hex = os.urandom(32).hex()
    kek = Kek(bytes.fromhex(kek_hex))
    try:
        yield QueryBackend("postgres", postgres_stores_on(pool, kek=kek), PostgresLedgerStore(pool=pool),
                           _PgRaw(pool), PostgresProjectorStore(pool=pool), kek_hex)
    finally:
        await pool.close()


@asynccontextmanager
async def sqlite_query_backend(path: Path) -> AsyncIterator[QueryBackend]:
    """The query side's SQLite adapters over the (migrated) database file at ``path``."""
    db = await open_database(path)
    kek_hex = os.urandom(32).hex()
    kek = Kek(bytes.fromhex(kek_hex))
    try:
        yield QueryBackend("sqlite", sqlite_stores(db, kek=kek), SqliteLedgerStore(db=db), SqliteRaw(db),
                           SqliteProjectorStore(db=db), kek_hex)
    finally:
        await db.close()


T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)


@asynccontextmanager
async def query_app(backend: QueryBackend, root: Path) -> AsyncIterator[tuple[httpx.AsyncClient, LocalLog]]:
    """The whole query app over ``backend``'s stores, publishing to a local log under ``root``,
    built the way the embedded default builds it; a client on it through ASGI."""
    log = LocalLog(root=root / "log")
    await log.start()
    try:
        await log.ensure_topics([TopicSpec(APP_TOPIC, 1)])
        settings = Settings(kek=SecretStr(backend.kek_hex), sealed_topic=APP_TOPIC)
        app = create_app(settings, options=QueryOptions(migrate=False, auth_cache_ttl_s=0, shred_interval_s=0),
                         parts=QueryParts(publisher=log, publisher_started=True, kek=backend.kek,
                                          signer=Ed25519Signer.generate("test-query")),
                         stores=backend.stores)
        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://q") as client:
            yield client, log
    finally:
        await log.stop()


APP_TOPIC = "sealtrail.sealed"
