"""The two storage backends of the ledger, opened the same way for the contract suites.

A :class:`LedgerBackend` bundles one database's ledger store, checkpoint store and reader with
the few raw operations the contracts need (create tenants, damage a stored leaf, count rows).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

import asyncpg

from sealtrail.core.merkle import MemoryNodeStore
from sealtrail.core.record import SealedRecord
from sealtrail.infra.postgres import migrate_url
from sealtrail.infra.sqlite import SqliteDatabase, open_database
from services.ledger.ports import CheckpointStore, LedgerStore, PartitionCommit
from services.ledger.postgres.checkpoints import PostgresCheckpointStore
from services.ledger.postgres.reader import PostgresLedgerReader
from services.ledger.postgres.store import PostgresLedgerStore
from services.ledger.reader import LedgerReader
from services.ledger.sequencer import LogHead, sequence
from services.ledger.sqlite.checkpoints import SqliteCheckpointStore
from services.ledger.sqlite.reader import SqliteLedgerReader
from services.ledger.sqlite.store import SqliteLedgerStore
from tests.support.ledger import sealed


class Raw(Protocol):
    """Direct database access for tests: what no port offers on purpose."""

    async def add_tenants(self, *tenants: str) -> None: ...
    async def damage_leaf(self, log_id: str, index: int) -> None: ...
    async def count(self, table: str) -> int: ...
    async def entries(self, log_id: str) -> list[tuple[int, bytes, bytes, bytes]]:
        """(idx, entry, leaf, chain) of every entry of the log, in index order."""
        ...
    async def nodes(self, log_id: str) -> set[tuple[int, int, bytes]]: ...
    async def head(self, log_id: str) -> tuple[int, bytes, bytes]:
        """(size, root, chain head) of the log."""
        ...


@dataclass
class LedgerBackend:
    name: str
    store: LedgerStore
    checkpoints: CheckpointStore
    reader: LedgerReader
    raw: Raw


class _PostgresRaw:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def add_tenants(self, *tenants: str) -> None:
        await self._pool.executemany(
            "INSERT INTO tenants (tenant_id, index_key, index_key_kek) VALUES ($1, $2, 'test')"
            " ON CONFLICT DO NOTHING", [(t, os.urandom(72)) for t in tenants])

    async def damage_leaf(self, log_id: str, index: int) -> None:
        await self._pool.execute("UPDATE entries SET leaf = $3 WHERE log_id = $1 AND idx = $2",
                                 log_id, index, os.urandom(32))

    async def count(self, table: str) -> int:
        return int(await self._pool.fetchval(f"SELECT count(*) FROM {table}"))

    async def entries(self, log_id: str) -> list[tuple[int, bytes, bytes, bytes]]:
        rows = await self._pool.fetch(
            "SELECT idx, entry, leaf, chain FROM entries WHERE log_id = $1 ORDER BY idx", log_id)
        return [(r["idx"], bytes(r["entry"]), bytes(r["leaf"]), bytes(r["chain"])) for r in rows]

    async def nodes(self, log_id: str) -> set[tuple[int, int, bytes]]:
        rows = await self._pool.fetch("SELECT level, idx, hash FROM tree_nodes WHERE log_id = $1", log_id)
        return {(r["level"], r["idx"], bytes(r["hash"])) for r in rows}

    async def head(self, log_id: str) -> tuple[int, bytes, bytes]:
        r = await self._pool.fetchrow("SELECT size, root, chain_head FROM logs WHERE log_id = $1", log_id)
        assert r is not None
        return r["size"], bytes(r["root"]), bytes(r["chain_head"])


class _SqliteRaw:
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def add_tenants(self, *tenants: str) -> None:
        rows = [(t, os.urandom(72)) for t in tenants]
        await self._db.write(lambda c: c.executemany(
            "INSERT INTO tenants (tenant_id, index_key, index_key_kek) VALUES (?, ?, 'test')"
            " ON CONFLICT DO NOTHING", rows))

    async def damage_leaf(self, log_id: str, index: int) -> None:
        leaf = os.urandom(32)
        await self._db.write(lambda c: c.execute(
            "UPDATE entries SET leaf = ? WHERE log_id = ? AND idx = ?", (leaf, log_id, index)))

    async def count(self, table: str) -> int:
        return int(await self._db.read(lambda c: c.execute(f"SELECT count(*) FROM {table}").fetchone()[0]))

    async def entries(self, log_id: str) -> list[tuple[int, bytes, bytes, bytes]]:
        return await self._db.read(lambda c: c.execute(
            "SELECT idx, entry, leaf, chain FROM entries WHERE log_id = ? ORDER BY idx",
            (log_id,)).fetchall())

    async def nodes(self, log_id: str) -> set[tuple[int, int, bytes]]:
        rows = await self._db.read(lambda c: c.execute(
            "SELECT level, idx, hash FROM tree_nodes WHERE log_id = ?", (log_id,)).fetchall())
        return set(rows)

    async def head(self, log_id: str) -> tuple[int, bytes, bytes]:
        row = await self._db.read(lambda c: c.execute(
            "SELECT size, root, chain_head FROM logs WHERE log_id = ?", (log_id,)).fetchone())
        assert row is not None
        return row[0], row[1], row[2]


@asynccontextmanager
async def postgres_backend(url: str) -> AsyncIterator[LedgerBackend]:
    """The ledger's PostgreSQL adapters over the (migrated) database at ``url``."""
    await migrate_url(url)
    pool = await asyncpg.create_pool(url, min_size=1, max_size=10)
    assert pool is not None
    try:
        yield LedgerBackend("postgres", PostgresLedgerStore(pool=pool), PostgresCheckpointStore(pool=pool),
                            PostgresLedgerReader(pool=pool), _PostgresRaw(pool))
    finally:
        await pool.close()


@asynccontextmanager
async def sqlite_backend(path: Path) -> AsyncIterator[LedgerBackend]:
    """The ledger's SQLite adapters over the (migrated) database file at ``path``."""
    db = await open_database(path)
    try:
        yield LedgerBackend("sqlite", SqliteLedgerStore(db=db), SqliteCheckpointStore(db=db),
                            SqliteLedgerReader(db=db), _SqliteRaw(db))
    finally:
        await db.close()


class LogWriter:
    """Appends sealed records to logs through a backend's store, keeping an in-memory reference."""

    def __init__(self, backend: LedgerBackend, *, origin_prefix: str = "test") -> None:
        self._backend = backend
        self._prefix = origin_prefix
        self._offset: int | None = None
        self.heads: dict[str, LogHead] = {}
        self.reference: dict[str, MemoryNodeStore] = {}
        self.records: dict[str, list[SealedRecord]] = {}
        self.entries: dict[str, list[bytes]] = {}

    async def append(self, log_id: str, count: int, *, received_at: datetime | None = None) -> list[SealedRecord]:
        """Commit ``count`` new records to ``log_id`` (creating it) in one batch; ``received_at``
        replaces the time ingest received them (now)."""
        new: list[LogHead] = []
        if log_id not in self.heads:
            await self._backend.raw.add_tenants(log_id)
            origin = f"{self._prefix}/{log_id}"
            self.heads[log_id] = LogHead.empty(log_id=log_id, tenant_id=log_id, origin=origin)
            self.reference[log_id], self.records[log_id], self.entries[log_id] = MemoryNodeStore(), [], []
            new.append(self.heads[log_id])
        records = [sealed(log_id) for _ in range(count)]
        if received_at is not None:
            for r in records:
                r.header["received_at"] = received_at.isoformat()
        batch = sequence(self.heads[log_id], records)
        end = (self._offset or 0) + count
        await self._backend.store.commit(PartitionCommit("g", "t", 0, self._offset, end, [batch], new))
        self._offset = end
        self.heads[log_id] = batch.after
        self.reference[log_id].add_runs(batch.runs)
        self.records[log_id] += records
        self.entries[log_id] += [e.entry for e in batch.entries]
        return records
