"""The SQLite WAL stays small: ``checkpoint_wal`` truncates it once it passed a size, leaves it
below that size, and a reader holding an old snapshot makes it wait for the next pass (while
``truncate_wal``, which an erasure needs, says so with :class:`UnavailableError`)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from sealtrail.errors import UnavailableError
from sealtrail.infra.sqlite import SqliteDatabase

MIB = 2**20


def _wal(path: Path) -> int:
    wal = path.with_name(path.name + "-wal")
    return wal.stat().st_size if wal.exists() else 0


async def _write_mib(db: SqliteDatabase, mib: int) -> None:
    await db.write(lambda c: c.execute("CREATE TABLE IF NOT EXISTS t (b BLOB) STRICT"))
    for _ in range(mib):
        await db.write(lambda c: c.executemany("INSERT INTO t VALUES (randomblob(1024))", [()] * 1024))


async def test_the_wal_is_truncated_once_past_the_size_and_kept_below_it(tmp_path: Path) -> None:
    """4 MiB written: below an 8 MiB threshold nothing happens; 12 MiB more: the WAL is over
    8 MiB, and one call truncates it to nothing and reports the bytes."""
    path = tmp_path / "db.sqlite"
    db = SqliteDatabase(path=path)
    try:
        await _write_mib(db, 4)
        assert 4 * MIB < _wal(path) < 8 * MIB
        assert await db.checkpoint_wal(above_bytes=8 * MIB) == 0
        await _write_mib(db, 12)
        before = _wal(path)
        assert before > 8 * MIB
        assert await db.checkpoint_wal(above_bytes=8 * MIB) == before
        assert _wal(path) == 0
        assert await db.read(lambda c: c.execute("SELECT count(*) FROM t").fetchone()[0]) == 16 * 1024
    finally:
        await db.close()


async def test_a_reader_on_an_old_snapshot_keeps_the_wal_until_it_is_done(tmp_path: Path) -> None:
    """While another connection reads an old snapshot, checkpoint_wal leaves the WAL (0 freed) and
    truncate_wal raises UnavailableError; once the reader is gone both succeed."""
    path = tmp_path / "db.sqlite"
    db = SqliteDatabase(path=path, busy_timeout_ms=200)
    try:
        await _write_mib(db, 2)
        reader = sqlite3.connect(path, isolation_level=None)
        try:
            reader.execute("BEGIN")
            reader.execute("SELECT count(*) FROM t").fetchone()  # holds this snapshot
            await _write_mib(db, 2)
            size = _wal(path)
            assert await db.checkpoint_wal(above_bytes=MIB) == 0
            with pytest.raises(UnavailableError, match="WAL"):
                await db.truncate_wal()
            assert _wal(path) >= size
        finally:
            reader.close()
        await asyncio.sleep(0)
        await db.truncate_wal()
        assert _wal(path) == 0
    finally:
        await db.close()
