"""The witness store on SQLite (one file, WAL, ``synchronous=FULL``: durable when COMMIT returns).

Every write runs on the database's one writer thread inside ``BEGIN IMMEDIATE``, and a second
process on the same file waits on SQLite's write lock, so the compare-and-swap of
:meth:`SqliteWitnessStore.advance` is one atomic statement under that lock.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

from sealtrail.core.witness import LogRecord
from sealtrail.infra.sqlite import SqliteDatabase, db_now, translated

SCHEMA = """
CREATE TABLE IF NOT EXISTS witness_logs (
    origin TEXT PRIMARY KEY,
    vkeys TEXT NOT NULL,
    size INTEGER NOT NULL DEFAULT 0 CHECK (size >= 0),
    root BLOB NOT NULL DEFAULT x'',
    note TEXT,
    updated_at TEXT NOT NULL
) STRICT
"""
_COLUMNS = "origin, vkeys, size, root, note"


def _record(row: tuple[str, str, int, bytes, str | None]) -> LogRecord:
    origin, vkeys, size, root, note = row
    return LogRecord(origin, tuple(vkeys.split("\n")) if vkeys else (), size, bytes(root), note)


class SqliteWitnessStore:
    """:class:`~services.witness.ports.WitnessStore` on one SQLite database file."""

    def __init__(self, *, db: SqliteDatabase) -> None:
        self._db = db

    @classmethod
    async def open(cls, path: Path) -> SqliteWitnessStore:
        """Open (creating if needed) the witness database at ``path``."""
        db = SqliteDatabase(path=path, readers=2)

        def create(conn: sqlite3.Connection) -> None:
            with translated("create witness tables"):
                conn.execute(SCHEMA)

        try:
            await db.write(create)
        except BaseException:
            await db.close()
            raise
        return cls(db=db)

    async def put_log(self, origin: str, vkeys: Sequence[str]) -> None:
        def run(conn: sqlite3.Connection) -> None:
            with translated("add witnessed log"):
                conn.execute(
                    "INSERT INTO witness_logs (origin, vkeys, updated_at) VALUES (?, ?, ?)"
                    " ON CONFLICT (origin) DO UPDATE SET vkeys = excluded.vkeys, updated_at = excluded.updated_at",
                    (origin, "\n".join(vkeys), db_now()))

        await self._db.write(run)

    async def disable_log(self, origin: str) -> bool:
        def run(conn: sqlite3.Connection) -> bool:
            with translated("disable witnessed log"):
                return conn.execute("UPDATE witness_logs SET vkeys = '', updated_at = ? WHERE origin = ?",
                                    (db_now(), origin)).rowcount > 0

        return await self._db.write(run)

    async def get_log(self, origin: str) -> LogRecord | None:
        def run(conn: sqlite3.Connection) -> LogRecord | None:
            with translated("read witnessed log"):
                row = conn.execute(f"SELECT {_COLUMNS} FROM witness_logs WHERE origin = ?", (origin,)).fetchone()
            return None if row is None else _record(row)

        return await self._db.read(run)

    async def list_logs(self) -> list[LogRecord]:
        def run(conn: sqlite3.Connection) -> list[LogRecord]:
            with translated("list witnessed logs"):
                rows = conn.execute(f"SELECT {_COLUMNS} FROM witness_logs ORDER BY origin").fetchall()
            return [_record(r) for r in rows]

        return await self._db.read(run)

    async def advance(self, origin: str, *, expected: LogRecord, size: int, root: bytes, note: str) -> bool:
        def run(conn: sqlite3.Connection) -> bool:
            with translated("record cosigned checkpoint"):
                cur = conn.execute(
                    "UPDATE witness_logs SET size = ?, root = ?, note = ?, updated_at = ?"
                    " WHERE origin = ? AND size = ? AND root = ?",
                    (size, root, note, db_now(), origin, expected.size, expected.root))
            return cur.rowcount == 1

        return await self._db.write(run)

    async def close(self) -> None:
        await self._db.close()
