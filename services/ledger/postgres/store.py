"""PostgreSQL adapter of the ledger store. asyncpg errors are translated here."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import asyncpg

from sealtrail.core.merkle import CompactRange, stored_nodes
from sealtrail.errors import ConcurrentWriteError, DuplicateEventError, UnavailableError
from sealtrail.infra.pgerrors import UNREACHABLE
from sealtrail.infra.postgres import Conn
from services.ledger.ports import PartitionCommit
from services.ledger.rows import INT_COLUMN_NAMES, TEXT_COLUMN_NAMES
from services.ledger.sequencer import LogHead, SequencedBatch

_ENTRY_COLUMNS = (
    "log_id", "idx", "tenant_id", "event_id", "type", "occurred_at", "received_at",
    *TEXT_COLUMN_NAMES, *INT_COLUMN_NAMES, "entry", "leaf", "chain",
)
_PAYLOAD_COLUMNS = ("log_id", "idx", "tenant_id", "key_ids", "nonce", "ciphertext")
_NODE_COLUMNS = ("log_id", "level", "idx", "hash")
# The constraint that makes an event id unique within its log (migration 0006).
_EVENT_ID_CONSTRAINT = "entries_event_id_log_id_key"


class PostgresLedgerStore:
    """Ledger storage in PostgreSQL; bulk rows go in with COPY."""

    def __init__(self, *, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def load_offsets(self, *, group: str, topic: str, partitions: Sequence[int]) -> dict[int, int]:
        rows = await self._fetch(
            "SELECT partition, next_offset FROM consumer_offsets"
            " WHERE group_id = $1 AND topic = $2 AND partition = ANY($3::int[])",
            group, topic, list(partitions),
        )
        return {r["partition"]: r["next_offset"] for r in rows}

    async def durable_offsets(self, *, group: str, topic: str, partitions: Sequence[int]) -> dict[int, int]:
        """The stored offsets, read by an UPDATE that leaves them as they are and commits
        synchronously. A transaction that wrote no WAL commits without flushing whatever the
        setting, so it writes: new versions of the offset rows. Its commit record follows those of
        the commits it read, and COMMIT returns once the WAL is flushed up to it, so the
        asynchronous commits of :meth:`commit` are on disk too."""
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                await conn.execute("SET LOCAL synchronous_commit = on")
                rows = await conn.fetch(
                    "UPDATE consumer_offsets SET next_offset = next_offset"
                    " WHERE group_id = $1 AND topic = $2 AND partition = ANY($3::int[])"
                    " RETURNING partition, next_offset",
                    group, topic, list(partitions))
        except UNREACHABLE as e:  # (a deadlock included: two trimmers at once)
            raise UnavailableError(f"PostgreSQL unavailable during reading durable offsets: {type(e).__name__}") from e
        return {r["partition"]: r["next_offset"] for r in rows}

    async def load_heads(self, log_ids: Sequence[str]) -> dict[str, LogHead]:
        rows = await self._fetch(
            "SELECT log_id, tenant_id, origin, chain_head, compact FROM logs WHERE log_id = ANY($1::text[])",
            list(log_ids),
        )
        return {
            r["log_id"]: LogHead(r["log_id"], r["tenant_id"], r["origin"],
                                 CompactRange.from_bytes(r["compact"]), r["chain_head"])
            for r in rows
        }

    async def tenants_exist(self, tenant_ids: Sequence[str]) -> set[str]:
        rows = await self._fetch("SELECT tenant_id FROM tenants WHERE tenant_id = ANY($1::text[])",
                                 list(tenant_ids))
        return {r["tenant_id"] for r in rows}

    async def existing_event_ids(self, log_id: str, event_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, int]:
        rows = await self._fetch(
            "SELECT event_id, idx FROM entries WHERE log_id = $1 AND event_id = ANY($2::uuid[])",
            log_id, list(event_ids),
        )
        return {r["event_id"]: r["idx"] for r in rows}

    async def commit(self, work: PartitionCommit) -> None:
        """Commit ``work`` in one transaction, without waiting for its WAL to reach the disk.

        Everything committed here is a deterministic function of records Kafka already holds
        (acks=all before ingest's 202), and the consumed offsets are in the same transaction. A
        server crash can lose a suffix of these commits, never part of one, and the ledger then
        sequences the same records again into the same entries. A signed checkpoint never covers
        a lost suffix: its own commit is synchronous, and flushing it flushes all earlier WAL,
        these commits included, before the note is published (docs/ledger.md, Durability).
        """
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                await conn.execute("SET LOCAL synchronous_commit = off")
                await _advance_offset(conn, work)
                for head in work.new_logs:
                    await _create_log(conn, head)
                for batch in work.batches:
                    await _write_batch(conn, batch)
        except UNREACHABLE as e:
            raise UnavailableError(f"PostgreSQL unavailable during commit: {type(e).__name__}") from e
        except asyncpg.UniqueViolationError as e:
            if e.constraint_name == _EVENT_ID_CONSTRAINT:
                raise DuplicateEventError("an event id of this commit is already in its log") from e
            raise ConcurrentWriteError(f"another writer committed first ({e.constraint_name})") from e

    async def _fetch(self, sql: str, *args: object) -> list[asyncpg.Record]:
        try:
            async with self._pool.acquire() as conn:
                return list(await conn.fetch(sql, *args))
        except UNREACHABLE as e:
            raise UnavailableError(f"PostgreSQL unavailable: {type(e).__name__}") from e


async def _advance_offset(conn: Conn, work: PartitionCommit) -> None:
    if work.from_offset is None:
        status = await conn.execute(
            "INSERT INTO consumer_offsets (group_id, topic, partition, next_offset)"
            " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            work.group, work.topic, work.partition, work.next_offset,
        )
    else:
        status = await conn.execute(
            "UPDATE consumer_offsets SET next_offset = $5"
            " WHERE group_id = $1 AND topic = $2 AND partition = $3 AND next_offset = $4",
            work.group, work.topic, work.partition, work.from_offset, work.next_offset,
        )
    if not status.endswith(" 1"):
        raise ConcurrentWriteError(f"offset of partition {work.partition} moved under us")


async def _create_log(conn: Conn, head: LogHead) -> None:
    status = await conn.execute(
        "INSERT INTO logs (log_id, tenant_id, origin, size, root, chain_head, compact)"
        " VALUES ($1, $2, $3, 0, $4, $5, $6) ON CONFLICT DO NOTHING",
        head.log_id, head.tenant_id, head.origin, head.compact.root(), head.chain_head,
        head.compact.to_bytes(),
    )
    if not status.endswith(" 1"):
        raise ConcurrentWriteError(f"log {head.log_id} was created by another writer")


async def _write_batch(conn: Conn, batch: SequencedBatch) -> None:
    after = batch.after
    status = await conn.execute(
        "UPDATE logs SET size = $3, root = $4, chain_head = $5, compact = $6, updated_at = now()"
        " WHERE log_id = $1 AND size = $2",
        batch.log_id, batch.before_size, after.size, after.compact.root(), after.chain_head,
        after.compact.to_bytes(),
    )
    if not status.endswith(" 1"):
        raise ConcurrentWriteError(f"log {batch.log_id} is no longer at size {batch.before_size}")
    tenant = after.tenant_id
    entries, payloads = [], []
    for e in batch.entries:
        cols = e.columns
        entries.append((batch.log_id, e.index, tenant, cols.event_id, cols.type, cols.occurred_at,
                        cols.received_at, *cols.text, *cols.ints, e.entry, e.leaf, e.chain))
        payloads.append((batch.log_id, e.index, tenant, cols.key_ids, e.record.nonce, e.record.ciphertext))
    nodes = [(batch.log_id, level, index, h) for level, index, h in stored_nodes(batch.runs)]
    await conn.copy_records_to_table("entries", records=entries, columns=_ENTRY_COLUMNS)
    await conn.copy_records_to_table("payloads", records=payloads, columns=_PAYLOAD_COLUMNS)
    if nodes:
        await conn.copy_records_to_table("tree_nodes", records=nodes, columns=_NODE_COLUMNS)
    await conn.execute(
        "INSERT INTO batches (log_id, first_idx, count, batch_root, tree_size, tree_root, chain_head)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7)",
        batch.log_id, batch.first_index, len(batch.entries), batch.batch_root, after.size,
        after.compact.root(), after.chain_head,
    )
