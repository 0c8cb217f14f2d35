"""PostgreSQL adapter plumbing: pools and versioned migrations.

asyncpg errors are translated into :mod:`sealtrail.errors` types here and in the other
PostgreSQL adapters, nowhere else.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from sealtrail.errors import UnavailableError
from sealtrail.infra.migrations import Migration, load

# A plain connection or one borrowed from a pool: adapters accept either.
Conn = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy

# Any fixed number works; it only has to be the same for every process that migrates.
_MIGRATION_LOCK = 0x5EA17A11


def load_migrations() -> list[Migration]:
    """The packaged PostgreSQL migrations, in version order. Versions MUST be unique; gaps are allowed."""
    return load("postgres")


async def migrate(conn: asyncpg.Connection) -> list[int]:
    """Apply every pending migration, each in its own transaction; return the versions applied.

    Safe to call from several processes at once: an advisory lock serialises them, and a
    migration that another process applied is skipped.
    """
    applied: list[int] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version int PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for mig in load_migrations():
            if mig.version in done:
                continue
            async with conn.transaction():
                await conn.execute(mig.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", mig.version, mig.name
                )
            applied.append(mig.version)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)
    return applied


async def create_pool(url: str, *, min_size: int = 2, max_size: int = 10,
                      application_name: str = "sealtrail") -> asyncpg.Pool:
    """A connection pool; raises UnavailableError when the server cannot be reached.

    ``application_name`` names the service in ``pg_stat_activity`` and the server's logs.
    """
    try:
        pool = await asyncpg.create_pool(url, min_size=min_size, max_size=max_size,
                                         server_settings={"application_name": application_name})
    except (OSError, asyncpg.PostgresError) as e:
        raise UnavailableError(f"PostgreSQL unreachable: {type(e).__name__}", retry_after=2.0) from e
    if pool is None:  # pragma: no cover - asyncpg returns None only for an uninitialised pool
        raise UnavailableError("PostgreSQL pool could not be created")
    return pool


@asynccontextmanager
async def connect(url: str) -> AsyncIterator[asyncpg.Connection]:
    """One connection, closed on exit."""
    try:
        conn = await asyncpg.connect(url)
    except (OSError, asyncpg.PostgresError) as e:
        raise UnavailableError(f"PostgreSQL unreachable: {type(e).__name__}", retry_after=2.0) from e
    try:
        yield conn
    finally:
        await conn.close()


async def migrate_url(url: str) -> list[int]:
    """Connect to ``url`` and apply pending migrations."""
    async with connect(url) as conn:
        return await migrate(conn)
