"""Every storage port of the query side, bundled: the one construction point for both backends.

:class:`QueryStores` holds the ports the query API uses (the projector, a service of its own, is given
its store by its composition root). Build it with
:func:`postgres_stores` (production; what :func:`services.query.service.build_service` does when
no stores are given) or :func:`sqlite_stores` (the embedded default).

Query app and projector over SQLite (the embedded ``sealtrail serve``)::

    db = await open_database(data_dir / "sealtrail.db")           # migrates, 0001..0005
    kek = load_kek(settings)
    stores = sqlite_stores(db, kek=kek)
    log = LocalLog(root=data_dir / "log"); await log.start()       # shared with ingest and ledger
    app = create_app(settings, options=QueryOptions(migrate=False),
                     parts=QueryParts(publisher=log, publisher_started=True, signer=signer, kek=kek),
                     stores=stores)
    projector = Projector(store=SqliteProjectorStore(db=db))                # services.projector
    task = asyncio.create_task(projector.run(stop_event))

``settings`` still supplies the service key file (unless ``signer`` is given), ``sealed_topic``
and the KEK unless ``kek`` is given (it MUST be the KEK ``stores`` was built with);
``database_url`` and ``kafka_bootstrap`` are not read when stores and a publisher are given.
With ``publisher_started=True`` the query app neither starts nor stops the shared ``LocalLog``
(its owner does) but still creates the sealed topic if missing. The database is not closed by
the app either: close ``db`` after the app and the projector have stopped. The retention
shredder runs inside the app's lifespan (``QueryOptions.shred_interval_s``) on ``stores.retention``.
Access, erasure and retention events go to the local log's sealed topic; the embedded ledger
appends them like any other event.

Tenant isolation: PostgreSQL adds row-level security on the read paths; SQLite has none, so every
SQLite adapter names the tenant in every query (see docs/embedded.md). Both adapters of each
port pass the same contract suite (tests/contract/query_*_contract.py);
tests/integration/test_query_embedded.py runs the whole query app this way.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass

import asyncpg

from sealtrail.core.keystore import KeyStore
from sealtrail.core.sealing import Kek
from sealtrail.errors import UnavailableError
from sealtrail.infra.auth import AuthStore
from sealtrail.infra.auth_postgres import PostgresAuthStore
from sealtrail.infra.auth_sqlite import SqliteAuthStore
from sealtrail.infra.keystore_postgres import PostgresKeyStore
from sealtrail.infra.keystore_sqlite import SqliteKeyStore
from sealtrail.infra.pgerrors import translated
from sealtrail.infra.postgres import create_pool, migrate_url
from sealtrail.infra.settings import Settings
from sealtrail.infra.sqlite import SqliteDatabase
from services.ledger.postgres.reader import PostgresLedgerReader
from services.ledger.reader import LedgerReader
from services.ledger.sqlite.reader import SqliteLedgerReader
from services.query.ports import (
    AnalyticsReader,
    ConsoleSessionStore,
    ErasureStore,
    InvestigationReader,
    RetentionStore,
)
from services.query.postgres.analytics import PostgresAnalyticsReader
from services.query.postgres.erasure import ErasureRewrite, PostgresErasureStore
from services.query.postgres.investigations import PostgresInvestigationReader
from services.query.postgres.retention import PostgresRetentionStore
from services.query.postgres.sessions import PostgresConsoleSessionStore
from services.query.sqlite.analytics import SqliteAnalyticsReader
from services.query.sqlite.erasure import SqliteErasureStore
from services.query.sqlite.investigations import SqliteInvestigationReader
from services.query.sqlite.retention import SqliteRetentionStore
from services.query.sqlite.sessions import SqliteConsoleSessionStore


@dataclass(frozen=True)
class QueryStores:
    """The query side's storage ports over one database (see the module docstring).

    ``keys`` is the bare key store, which the query service wraps in its own cache, or a
    :class:`~sealtrail.infra.keycache.CachingKeyStore` shared with the process's other services
    (``sealtrail serve``), used as it is. ``ping`` answers
    whether the database responds (readiness) and never raises.
    """

    backend: str
    auth: AuthStore
    keys: KeyStore
    ledger: LedgerReader
    analytics: AnalyticsReader
    investigations: InvestigationReader
    erasures: ErasureStore
    retention: RetentionStore
    console_sessions: ConsoleSessionStore
    ping: Callable[[], Awaitable[bool]]
    record_service_key: Callable[[str, str, str], Awaitable[None]] | None = None
    """Record the query service's erasure-receipt key (name, key id, vkey) where ingest's check finds
    it (PostgreSQL; the embedded default gives its services distinct keys itself)."""


def postgres_stores_on(pool: asyncpg.Pool, *, kek: Kek, erasure_rewrite: ErasureRewrite = "full") -> QueryStores:
    """Every port over an open asyncpg pool (the caller closes it)."""

    async def ping() -> bool:
        try:
            await pool.fetchval("SELECT 1")
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            return False
        return True

    async def record_service_key(name: str, key_id: str, vkey: str) -> None:
        with translated("record the erasure-receipt key"):
            await pool.execute("INSERT INTO signing_keys (key_name, key_id, purpose, vkey)"
                               " VALUES ($1, $2, 'erasure-receipt', $3) ON CONFLICT DO NOTHING", name, key_id, vkey)

    return QueryStores(
        backend="postgres", auth=PostgresAuthStore(pool=pool), keys=PostgresKeyStore(pool=pool, kek=kek),
        ledger=PostgresLedgerReader(pool=pool),
        analytics=PostgresAnalyticsReader(pool=pool), investigations=PostgresInvestigationReader(pool=pool),
        erasures=PostgresErasureStore(pool=pool, rewrite=erasure_rewrite), retention=PostgresRetentionStore(pool=pool),
        console_sessions=PostgresConsoleSessionStore(pool=pool), ping=ping,
        record_service_key=record_service_key)


async def postgres_stores(settings: Settings, *, kek: Kek, stack: AsyncExitStack, migrate: bool = True
                          ) -> QueryStores:
    """Connect to ``settings.database_url`` (applying pending migrations when ``migrate``) and
    bundle every port; ``stack`` closes the pool."""
    url = settings.require_database()
    if migrate:
        await migrate_url(url)
    pool = await create_pool(url, min_size=min(settings.db_pool_min, 2), max_size=settings.db_pool_max,
                             application_name="sealtrail-query")
    stack.push_async_callback(pool.close)
    return postgres_stores_on(pool, kek=kek, erasure_rewrite=settings.erasure_rewrite)


def sqlite_stores(db: SqliteDatabase, *, kek: Kek) -> QueryStores:
    """Every port over an open, migrated SQLite database (the caller closes it)."""

    async def ping() -> bool:
        try:
            await db.read(lambda c: c.execute("SELECT 1").fetchone())
        except (sqlite3.Error, UnavailableError, OSError):
            return False
        return True

    return QueryStores(
        backend="sqlite", auth=SqliteAuthStore(db=db), keys=SqliteKeyStore(db=db, kek=kek),
        ledger=SqliteLedgerReader(db=db),
        analytics=SqliteAnalyticsReader(db=db), investigations=SqliteInvestigationReader(db=db),
        erasures=SqliteErasureStore(db=db), retention=SqliteRetentionStore(db=db),
        console_sessions=SqliteConsoleSessionStore(db=db), ping=ping)
