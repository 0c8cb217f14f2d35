"""The witness store on PostgreSQL.

The compare-and-swap of :meth:`PostgresWitnessStore.advance` is one ``UPDATE ... WHERE size = $
AND root = $``: the row lock serialises concurrent updates of one log, and under READ COMMITTED
a waiting update re-reads the committed row and matches nothing once another advanced it.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from sealtrail.core.witness import LogRecord
from sealtrail.infra.pgerrors import translated
from sealtrail.infra.postgres import Conn, create_pool

SCHEMA = """
CREATE TABLE IF NOT EXISTS witness_logs (
    origin text PRIMARY KEY,
    vkeys text[] NOT NULL,
    size bigint NOT NULL DEFAULT 0 CHECK (size >= 0),
    root bytea NOT NULL DEFAULT ''::bytea,
    note text,
    updated_at timestamptz NOT NULL DEFAULT now()
)
"""
# Any fixed number: only processes creating the witness table take it.
_SCHEMA_LOCK = 0x5EA1_3177
_COLUMNS = "origin, vkeys, size, root, note"


def _record(row: asyncpg.Record) -> LogRecord:
    return LogRecord(row["origin"], tuple(row["vkeys"]), row["size"], bytes(row["root"]), row["note"])


async def create_schema(conn: Conn) -> None:
    """Create the witness table if missing (safe from several processes at once)."""
    with translated("create witness tables"):
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _SCHEMA_LOCK)
            await conn.execute(SCHEMA)


class PostgresWitnessStore:
    """:class:`~services.witness.ports.WitnessStore` on a PostgreSQL pool."""

    def __init__(self, *, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @classmethod
    async def open(cls, url: str) -> PostgresWitnessStore:
        """Connect to ``url`` and create the witness table if missing."""
        pool = await create_pool(url, min_size=1, max_size=8, application_name="sealtrail-witness")
        try:
            async with pool.acquire() as conn:
                await create_schema(conn)
        except BaseException:
            await pool.close()
            raise
        return cls(pool=pool)

    async def put_log(self, origin: str, vkeys: Sequence[str]) -> None:
        with translated("add witnessed log"):
            await self._pool.execute(
                "INSERT INTO witness_logs (origin, vkeys) VALUES ($1, $2)"
                " ON CONFLICT (origin) DO UPDATE SET vkeys = excluded.vkeys, updated_at = now()",
                origin, list(vkeys))

    async def disable_log(self, origin: str) -> bool:
        with translated("disable witnessed log"):
            status = await self._pool.execute(
                "UPDATE witness_logs SET vkeys = '{}', updated_at = now() WHERE origin = $1", origin)
        return str(status) == "UPDATE 1"

    async def get_log(self, origin: str) -> LogRecord | None:
        with translated("read witnessed log"):
            row = await self._pool.fetchrow(f"SELECT {_COLUMNS} FROM witness_logs WHERE origin = $1", origin)
        return None if row is None else _record(row)

    async def list_logs(self) -> list[LogRecord]:
        with translated("list witnessed logs"):
            rows = await self._pool.fetch(f"SELECT {_COLUMNS} FROM witness_logs ORDER BY origin")
        return [_record(r) for r in rows]

    async def advance(self, origin: str, *, expected: LogRecord, size: int, root: bytes, note: str) -> bool:
        with translated("record cosigned checkpoint"):
            status = await self._pool.execute(
                "UPDATE witness_logs SET size = $1, root = $2, note = $3, updated_at = now()"
                " WHERE origin = $4 AND size = $5 AND root = $6",
                size, root, note, origin, expected.size, expected.root)
        return str(status) == "UPDATE 1"

    async def close(self) -> None:
        await self._pool.close()
