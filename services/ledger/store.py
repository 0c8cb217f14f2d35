"""The ledger's storage port. Adapters: PostgreSQL (production) and SQLite (embedded)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from services.ledger.sequencer import LogHead, SequencedBatch


@dataclass(frozen=True)
class PartitionCommit:
    """Everything one poll of one partition produced, committed atomically.

    ``from_offset`` is the stored offset this work started from (None when none was stored);
    ``next_offset`` is the offset after the last record consumed, poison records included.
    """

    group: str
    topic: str
    partition: int
    from_offset: int | None
    next_offset: int
    batches: Sequence[SequencedBatch]
    new_logs: Sequence[LogHead]


class LedgerStore(Protocol):
    """Durable log storage.

    :meth:`commit` MUST be atomic: the entries, payloads, tree nodes, batch rows, new log heads
    and the consumer offset become visible together or not at all. It MUST raise
    :class:`~sealtrail.errors.ConcurrentWriteError`, and change nothing, when the stored offset
    is not ``from_offset`` or a log's stored size is not the batch's starting size: another
    writer got there first. Indices MUST stay contiguous from 0 per log and an event id MUST
    appear at most once per log.
    """

    async def load_offsets(self, *, group: str, topic: str, partitions: Sequence[int]) -> dict[int, int]:
        """Stored next offsets of the given partitions (absent when none stored)."""
        ...

    async def load_heads(self, log_ids: Sequence[str]) -> dict[str, LogHead]:
        """Committed heads of the logs that exist."""
        ...

    async def tenants_exist(self, tenant_ids: Sequence[str]) -> set[str]:
        """The subset of ``tenant_ids`` that are known tenants."""
        ...

    async def existing_event_ids(self, log_id: str, event_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, int]:
        """Of ``event_ids``, those already in the log, with their indices."""
        ...

    async def commit(self, work: PartitionCommit) -> None:
        """Commit one partition's work atomically (see class docstring)."""
        ...
