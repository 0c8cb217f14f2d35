"""Migration 0009 on both databases: a log stored with every tree level (as before it) keeps
serving the same proofs once the rows of the levels between strides are gone, and the ledger
writes only stride levels from then on."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import asyncpg
import pytest

from sealtrail.core import merkle
from sealtrail.infra.postgres import migrate_url
from tests.support.backends import LedgerBackend, LogWriter, postgres_backend, sqlite_backend

BATCHES = (37, 1, 200, 90)  # 328 leaves: levels up to 8
Opener = Callable[[], AbstractAsyncContextManager[LedgerBackend]]


@pytest.fixture(params=["postgres", "sqlite"])
async def opener(request: pytest.FixtureRequest, fresh_db_url: str, tmp_path: Path) -> AsyncIterator[Opener]:
    if request.param == "postgres":
        yield lambda: postgres_backend(fresh_db_url)
    else:
        yield lambda: sqlite_backend(tmp_path / "ledger.db")


def _between_strides(batches: tuple[int, ...], leaves: list[bytes]) -> list[tuple[int, int, bytes]]:
    """The nodes a store kept before 0009 and keeps no more: levels 1-3, 5-7, ..."""
    compact, pos, out = merkle.CompactRange(), 0, []
    for count in batches:
        for run in compact.extend(leaves[pos:pos + count]):
            if run.level and not merkle.stored_level(run.level):
                out += [(run.level, run.start + i, h) for i, h in enumerate(run.hashes)]
        pos += count
    return out


async def _insert_old_rows(backend: LedgerBackend, url: str, tmp_path: Path,
                           rows: list[tuple[int, int, bytes]]) -> None:
    sql_rows = [("acme", level, index, h) for level, index, h in rows]
    if backend.name == "postgres":
        conn = await asyncpg.connect(url)
        try:
            await conn.executemany("INSERT INTO tree_nodes (log_id, level, idx, hash) VALUES ($1, $2, $3, $4)",
                                   sql_rows)
            await conn.execute("DELETE FROM schema_migrations WHERE version = 9")
        finally:
            await conn.close()
    else:
        with sqlite3.connect(tmp_path / "ledger.db") as conn:
            conn.executemany("INSERT INTO tree_nodes (log_id, level, idx, hash) VALUES (?, ?, ?, ?)", sql_rows)
            conn.execute("DELETE FROM schema_migrations WHERE version = 9")
        conn.close()


async def test_proofs_survive_the_removal_of_the_levels_between_strides(
    opener: Opener, fresh_db_url: str, tmp_path: Path
) -> None:
    async with opener() as backend:
        writer = LogWriter(backend)
        for count in BATCHES:
            await writer.append("acme", count)
        stored = await backend.raw.nodes("acme")
        assert stored and {level for level, _, _ in stored} == {4, 8}
        leaves = [leaf for _, _, leaf, _ in await backend.raw.entries("acme")]
    old = _between_strides(BATCHES, leaves)
    assert len(old) > len(stored) * 10
    await _insert_old_rows(backend, fresh_db_url, tmp_path, old)
    if backend.name == "postgres":
        await migrate_url(fresh_db_url)  # applies 0009 again
    async with opener() as backend:  # the SQLite backend migrates on open
        assert await backend.raw.nodes("acme") == stored
        reference = writer.reference["acme"]
        size = sum(BATCHES)
        for index in (0, 1, 15, 16, 255, 256, size - 1):
            assert await backend.reader.inclusion_proof("acme", "acme", index, size) == \
                merkle.inclusion_proof(reference, index, size)
        for size1 in (1, 3, 16, 38, 239, size - 1):
            assert await backend.reader.consistency_proof("acme", "acme", size1, size) == \
                merkle.consistency_proof(reference, size1, size)
