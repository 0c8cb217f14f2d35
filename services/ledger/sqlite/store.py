"""SQLite adapter of the ledger store (embedded default). sqlite3 errors are translated here.

A commit is one write transaction (BEGIN IMMEDIATE) with the same compare-and-set checks as
PostgreSQL: the consumer offset must still be the one the work started from, a new log must not
exist yet, and each log must still be at the batch's starting size. Anything else raises
:class:`~sealtrail.errors.ConcurrentWriteError` and rolls the whole commit back.

A commit is atomic but not fsync'd (``durable=False``): everything it writes, the consumer offset
included, is derived from records the bus already made durable, so a machine crash that rolls
it back only sends the ledger back to the stored offset, where it sequences the same records
into the same entries again. Checkpoint signing commits durably, and its fsync covers every
earlier commit (docs/embedded.md, "Durability").
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from sealtrail.core.merkle import CompactRange, stored_nodes
from sealtrail.errors import ConcurrentWriteError, DuplicateEventError
from sealtrail.infra.micros import to_micros
from sealtrail.infra.sqlite import SqliteDatabase, db_now, translated
from services.ledger.ports import PartitionCommit
from services.ledger.rows import INT_COLUMN_NAMES, TEXT_COLUMN_NAMES
from services.ledger.sequencer import LogHead, SequencedBatch

# Stays well under SQLITE_MAX_VARIABLE_NUMBER on every supported SQLite.
MAX_IN_LIST = 500

_ENTRY_COLUMNS = (
    "log_id", "idx", "tenant_id", "event_id", "type", "occurred_at",
    *TEXT_COLUMN_NAMES, *INT_COLUMN_NAMES, "entry", "leaf", "chain",
)
_INSERT_ENTRY = (f"INSERT INTO entries ({', '.join(_ENTRY_COLUMNS)})"
                 f" VALUES ({', '.join('?' * len(_ENTRY_COLUMNS))})")
_Row = tuple[Any, ...]
# SQLite's message when UNIQUE (log_id, event_id) of entries fails.
_EVENT_ID_CONSTRAINT_FAILED = "UNIQUE constraint failed: entries.log_id, entries.event_id"
T = TypeVar("T")


def select_in(conn: sqlite3.Connection, sql: str, fixed: Sequence[object],
              values: Sequence[object]) -> list[_Row]:
    """Run ``sql`` (with ``{marks}`` for an IN list after the ``fixed`` parameters) in chunks."""
    rows: list[_Row] = []
    for i in range(0, len(values), MAX_IN_LIST):
        chunk = values[i:i + MAX_IN_LIST]
        rows += conn.execute(sql.format(marks=",".join("?" * len(chunk))), (*fixed, *chunk)).fetchall()
    return rows


class SqliteLedgerStore:
    """Ledger storage in one SQLite database."""

    def __init__(self, *, db: SqliteDatabase) -> None:
        self._db = db

    async def load_offsets(self, *, group: str, topic: str, partitions: Sequence[int]) -> dict[int, int]:
        sql = ("SELECT partition, next_offset FROM consumer_offsets"
               " WHERE group_id = ? AND topic = ? AND partition IN ({marks})")
        rows = await self._read(lambda c: select_in(c, sql, (group, topic), list(partitions)))
        return {p: o for p, o in rows}

    async def durable_offsets(self, *, group: str, topic: str, partitions: Sequence[int]) -> dict[int, int]:
        """The stored offsets, then an fsync of the WAL: :meth:`commit` does not sync, and the
        commits read here are on disk once it returned."""
        offsets = await self.load_offsets(group=group, topic=topic, partitions=partitions)
        await self._db.sync_wal()
        return offsets

    async def load_heads(self, log_ids: Sequence[str]) -> dict[str, LogHead]:
        sql = "SELECT log_id, tenant_id, origin, chain_head, compact FROM logs WHERE log_id IN ({marks})"
        rows = await self._read(lambda c: select_in(c, sql, (), list(log_ids)))
        return {log_id: LogHead(log_id, tenant, origin, CompactRange.from_bytes(compact), chain_head)
                for log_id, tenant, origin, chain_head, compact in rows}

    async def tenants_exist(self, tenant_ids: Sequence[str]) -> set[str]:
        sql = "SELECT tenant_id FROM tenants WHERE tenant_id IN ({marks})"
        return {r[0] for r in await self._read(lambda c: select_in(c, sql, (), list(tenant_ids)))}

    async def existing_event_ids(self, log_id: str, event_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, int]:
        sql = "SELECT event_id, idx FROM entries WHERE log_id = ? AND event_id IN ({marks})"
        ids = [str(e) for e in event_ids]
        rows = await self._read(lambda c: select_in(c, sql, (log_id,), ids))
        return {uuid.UUID(e): idx for e, idx in rows}

    async def commit(self, work: PartitionCommit) -> None:
        with translated("ledger commit"):
            try:
                await self._db.write(lambda c: _commit(c, work), durable=False)
            except sqlite3.IntegrityError as e:
                if e.sqlite_errorname not in ("SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY"):
                    raise
                if str(e) == _EVENT_ID_CONSTRAINT_FAILED:
                    raise DuplicateEventError("an event id of this commit is already in its log") from e
                raise ConcurrentWriteError("another writer committed first") from e

    async def _read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        with translated("ledger read"):
            return await self._db.read(work)


def _commit(conn: sqlite3.Connection, work: PartitionCommit) -> None:
    _advance_offset(conn, work)
    for head in work.new_logs:
        _create_log(conn, head)
    for batch in work.batches:
        _write_batch(conn, batch)


def _advance_offset(conn: sqlite3.Connection, work: PartitionCommit) -> None:
    if work.from_offset is None:
        cur = conn.execute(
            "INSERT INTO consumer_offsets (group_id, topic, partition, next_offset) VALUES (?, ?, ?, ?)"
            " ON CONFLICT DO NOTHING", (work.group, work.topic, work.partition, work.next_offset))
    else:
        cur = conn.execute(
            "UPDATE consumer_offsets SET next_offset = ?"
            " WHERE group_id = ? AND topic = ? AND partition = ? AND next_offset = ?",
            (work.next_offset, work.group, work.topic, work.partition, work.from_offset))
    if cur.rowcount != 1:
        raise ConcurrentWriteError(f"offset of partition {work.partition} moved under us")


def _create_log(conn: sqlite3.Connection, head: LogHead) -> None:
    cur = conn.execute(
        "INSERT INTO logs (log_id, tenant_id, origin, size, root, chain_head, compact)"
        " VALUES (?, ?, ?, 0, ?, ?, ?) ON CONFLICT DO NOTHING",
        (head.log_id, head.tenant_id, head.origin, head.compact.root(), head.chain_head,
         head.compact.to_bytes()))
    if cur.rowcount != 1:
        raise ConcurrentWriteError(f"log {head.log_id} was created by another writer")


def _write_batch(conn: sqlite3.Connection, batch: SequencedBatch) -> None:
    after = batch.after
    cur = conn.execute(
        "UPDATE logs SET size = ?, root = ?, chain_head = ?, compact = ?, updated_at = ?"
        " WHERE log_id = ? AND size = ?",
        (after.size, after.compact.root(), after.chain_head, after.compact.to_bytes(), db_now(),
         batch.log_id, batch.before_size))
    if cur.rowcount != 1:
        raise ConcurrentWriteError(f"log {batch.log_id} is no longer at size {batch.before_size}")
    tenant, log_id = after.tenant_id, batch.log_id
    entries, payloads, payload_keys = [], [], []
    for e in batch.entries:
        cols, index = e.columns, e.index
        entries.append((log_id, index, tenant, str(cols.event_id), cols.type,
                        to_micros(cols.occurred_at), *cols.text, *cols.ints,
                        e.entry, e.leaf, e.chain))
        key_ids = cols.key_ids if len(cols.key_ids) < 2 else list(dict.fromkeys(cols.key_ids))
        payloads.append((log_id, index, tenant, e.record.nonce, e.record.ciphertext))
        payload_keys += [(k, log_id, index) for k in key_ids]
    conn.executemany(_INSERT_ENTRY, entries)
    conn.executemany("INSERT INTO payloads (log_id, idx, tenant_id, nonce, ciphertext) VALUES (?, ?, ?, ?, ?)",
                     payloads)
    conn.executemany("INSERT INTO payload_keys (key_id, log_id, idx) VALUES (?, ?, ?)", payload_keys)
    conn.executemany("INSERT INTO tree_nodes (log_id, level, idx, hash) VALUES (?, ?, ?, ?)",
                     [(batch.log_id, level, index, h) for level, index, h in stored_nodes(batch.runs)])
    conn.execute(
        "INSERT INTO batches (log_id, first_idx, count, batch_root, tree_size, tree_root, chain_head)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (batch.log_id, batch.first_index, len(batch.entries), batch.batch_root, after.size,
         after.compact.root(), after.chain_head))
