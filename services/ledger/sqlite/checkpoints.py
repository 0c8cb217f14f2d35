"""SQLite adapter of the checkpoint store (embedded default). sqlite3 errors are translated here.

A signing transaction is a write transaction: SQLite admits one writer at a time, which excludes
other signers and key rotations just as the advisory lock and FOR SHARE do in PostgreSQL.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TypeVar

from sealtrail.core.fields import parse_timestamp
from sealtrail.core.note import NoteSignature
from sealtrail.core.witnessing import with_cosignatures
from sealtrail.errors import UnavailableError
from sealtrail.infra.sqlite import SqliteDatabase, db_now, to_db_time, translated
from services.ledger.ports import (
    GROWN_LOGS_SQL,
    LATEST_NOTES_SQL,
    Sign,
    SignedCheckpoint,
    SigningKeyRow,
    SigningState,
    TreeHead,
    nodes_for,
)
from services.ledger.sqlite.tree import consistency_proof as tree_consistency_proof
from services.ledger.sqlite.tree import find_nodes

T = TypeVar("T")


@contextmanager
def _sqlite(what: str) -> Iterator[None]:
    try:
        with translated(what):
            yield
    except sqlite3.Error as e:
        raise UnavailableError(f"SQLite refused {what}: {type(e).__name__}") from e


def active_key_ids(conn: sqlite3.Connection) -> dict[str, str]:
    rows = conn.execute("SELECT purpose, key_id FROM signing_keys"
                        " WHERE purpose IN ('checkpoint', 'cosign') AND not_after IS NULL").fetchall()
    return {purpose: key_id for purpose, key_id in rows}


class SqliteCheckpointStore:
    """Checkpoints and signing keys in SQLite."""

    def __init__(self, *, db: SqliteDatabase) -> None:
        self._db = db

    async def grown_logs(self) -> list[str]:
        return await self._read(lambda c: [r[0] for r in c.execute(GROWN_LOGS_SQL)], "listing grown logs")

    async def active_key_ids(self) -> dict[str, str]:
        return await self._read(active_key_ids, "reading signing keys")

    async def replace_active_keys(self, keys: Sequence[SigningKeyRow]) -> None:
        def replace(conn: sqlite3.Connection) -> None:
            now = db_now()
            conn.execute("UPDATE signing_keys SET not_after = ?"
                         " WHERE purpose IN ('checkpoint', 'cosign') AND not_after IS NULL", (now,))
            conn.executemany(
                "INSERT INTO signing_keys (key_name, key_id, purpose, vkey, not_before)"
                " VALUES (?, ?, ?, ?, ?)",
                [(k.key_name, k.key_id, k.purpose, k.vkey, now) for k in keys])

        await self._write(replace, "rotating signing keys")

    async def sign_next(self, log_id: str, sign: Sign) -> SignedCheckpoint | None:
        def work(conn: sqlite3.Connection) -> SignedCheckpoint | None:
            state = _state(conn, log_id)
            if state is None:
                return None
            signed = sign(state)
            conn.execute(
                "INSERT INTO checkpoints (log_id, tree_size, root, note, signed_at) VALUES (?, ?, ?, ?, ?)",
                (log_id, signed.size, signed.root, signed.note,
                 to_db_time(datetime.fromtimestamp(signed.signed_at, UTC))))
            return signed

        return await self._write(work, "signing a checkpoint")

    async def add_cosignatures(self, log_id: str, size: int, cosignatures: Sequence[NoteSignature]) -> bool:
        def work(conn: sqlite3.Connection) -> bool:
            row = conn.execute("SELECT note FROM checkpoints WHERE log_id = ? AND tree_size = ?",
                               (log_id, size)).fetchone()
            if row is None:
                return False
            conn.execute("UPDATE checkpoints SET note = ? WHERE log_id = ? AND tree_size = ?",
                         (with_cosignatures(row[0], list(cosignatures)), log_id, size))
            return True

        return await self._write(work, "storing witness cosignatures")

    async def latest_notes(self) -> list[tuple[str, str]]:
        return await self._read(lambda c: [(r[0], r[1]) for r in c.execute(LATEST_NOTES_SQL)],
                                "reading the latest checkpoints")

    async def consistency_proof(self, log_id: str, size1: int, size2: int) -> list[bytes]:
        return await self._read(lambda c: tree_consistency_proof(c, log_id, size1, size2),
                                "reading a consistency proof")

    async def _read(self, work: Callable[[sqlite3.Connection], T], what: str) -> T:
        with _sqlite(what):
            return await self._db.read(work)

    async def _write(self, work: Callable[[sqlite3.Connection], T], what: str) -> T:
        with _sqlite(what):
            return await self._db.write(work)


def _state(conn: sqlite3.Connection, log_id: str) -> SigningState | None:
    row = conn.execute("SELECT origin, size, root FROM logs WHERE log_id = ?", (log_id,)).fetchone()
    prev = conn.execute("SELECT tree_size, root FROM checkpoints WHERE log_id = ?"
                        " ORDER BY tree_size DESC LIMIT 1", (log_id,)).fetchone()
    if row is None or (prev is not None and prev[0] >= row[1]):
        return None
    head = TreeHead(row[1], row[2])
    previous = None if prev is None else TreeHead(prev[0], prev[1])
    nodes = find_nodes(conn, log_id, nodes_for(previous, head))
    # entries keeps no received_at column (migration 0016): the entry's header holds it.
    first = conn.execute("SELECT json_extract(CAST(entry AS TEXT), '$.received_at') FROM entries"
                         " WHERE log_id = ? AND idx = ?", (log_id, 0 if previous is None else previous.size)).fetchone()
    return SigningState(log_id, row[0], head, previous, nodes, active_key_ids(conn),
                        None if first is None else parse_timestamp(first[0]))
