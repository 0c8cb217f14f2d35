"""The ledger's storage ports: the ledger store (one atomic commit per partition poll) and the
checkpoint store (grown logs, one signing transaction per log, signing keys).

Adapters, one module per port and technology: :mod:`services.ledger.postgres.store`,
:mod:`services.ledger.postgres.checkpoints` (production) and :mod:`services.ledger.sqlite.store`,
:mod:`services.ledger.sqlite.checkpoints` (embedded default). The checkpointer's decisions (is the stored
tree consistent? sign with which key?) stay pure in :mod:`services.ledger.checkpointer`; a store only
reads, locks and writes. Only the composition roots (the CLI and :mod:`services.ledger.service`) pick adapters.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from sealtrail.core.merkle import NodeID, plan_consistency, range_nodes
from sealtrail.core.note import NoteSignature
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

    async def durable_offsets(self, *, group: str, topic: str, partitions: Sequence[int]) -> dict[int, int]:
        """As :meth:`load_offsets`, and every commit up to the ones read is on disk when this
        returns: a crash of the database MUST NOT take an offset returned here back. (Commits
        may be acknowledged before they are durable; Kafka's records below an offset are deleted
        only once this has returned it.)"""
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


# Logs grown beyond their latest checkpoint; the same SQL on PostgreSQL and SQLite.
LATEST_NOTES_SQL = ("SELECT c.log_id, c.note FROM checkpoints c WHERE c.tree_size ="
                    " (SELECT max(m.tree_size) FROM checkpoints m WHERE m.log_id = c.log_id) ORDER BY c.log_id")

GROWN_LOGS_SQL = """
SELECT l.log_id FROM logs l
WHERE l.size > coalesce((SELECT max(c.tree_size) FROM checkpoints c WHERE c.log_id = l.log_id), 0)
ORDER BY l.log_id
"""


@dataclass(frozen=True, slots=True)
class TreeHead:
    """A tree size and its root."""

    size: int
    root: bytes


@dataclass(frozen=True, slots=True)
class SigningState:
    """One grown log as the signer sees it inside the signing transaction.

    ``nodes`` holds the stored nodes of :func:`nodes_for` ``(previous, head)``; a node that is not
    stored is absent. ``key_ids`` maps a purpose (``checkpoint``, ``cosign``) to the id of its
    active key; it is empty when no key was ever made. ``first_received_at`` is when ingest
    received the first entry not covered by ``previous`` (None when that entry is not stored).
    """

    log_id: str
    origin: str
    head: TreeHead
    previous: TreeHead | None
    nodes: Mapping[NodeID, bytes]
    key_ids: Mapping[str, str]
    first_received_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class SignedCheckpoint:
    """A checkpoint note to store: its size, root, note text and signed time (Unix seconds).

    ``delay_s`` (not stored) is how long after ingest received the first entry it newly covers
    (the longest-waiting one, in log order) the note was signed, when known.
    """

    size: int
    root: bytes
    note: str
    signed_at: int
    delay_s: float | None = None


Sign = Callable[[SigningState], SignedCheckpoint]


@dataclass(frozen=True, slots=True)
class SigningKeyRow:
    """The public part of one signing key, as published."""

    key_name: str
    key_id: str
    purpose: str
    vkey: str


def nodes_for(previous: TreeHead | None, head: TreeHead) -> list[NodeID]:
    """The stored nodes that recompute ``head.root`` and prove ``previous`` consistent with it."""
    ids = range_nodes(0, head.size)
    if previous is not None and 0 < previous.size < head.size:
        ids += plan_consistency(previous.size, head.size).ids
    return list(dict.fromkeys(ids))


@runtime_checkable
class SigningKeyStore(Protocol):
    """The published halves of the checkpoint keys and their validity windows."""

    async def active_key_ids(self) -> dict[str, str]:
        """Purpose → key id of the keys whose window is open (none: empty)."""
        ...

    async def replace_active_keys(self, keys: Sequence[SigningKeyRow]) -> None:
        """In one transaction: close the open windows of the checkpoint and cosign keys, open ``keys``.

        MUST wait for (or exclude) a signing transaction in flight, so that no checkpoint is
        stored under a key whose window closed before its signed time.
        """
        ...


class CheckpointStore(SigningKeyStore, Protocol):
    """Storage of signed checkpoints."""

    async def grown_logs(self) -> list[str]:
        """Logs whose size exceeds their latest checkpoint's, in log-id order."""
        ...

    async def sign_next(self, log_id: str, sign: Sign) -> SignedCheckpoint | None:
        """Sign and store the log's next checkpoint, or return None when there is nothing to do.

        MUST run as one transaction that excludes every other signer of the log and every key
        rotation: read the log's head, its latest checkpoint, the nodes of :func:`nodes_for` and
        the active key ids; return None (storing nothing) when another signer holds the log or
        the head is not beyond the latest checkpoint; otherwise call ``sign`` and store what it
        returns. When ``sign`` raises, MUST store nothing and let the error through. Driver
        errors MUST come out as :class:`~sealtrail.errors.SealtrailError`.
        """
        ...

    async def add_cosignatures(self, log_id: str, size: int, cosignatures: Sequence[NoteSignature]) -> bool:
        """Add witness cosignature lines to the stored note of the log's checkpoint of ``size``.

        MUST keep the note's text and every line it holds, add each new line once, and read and
        write the note in one transaction that excludes another update of it. Returns False (and
        stores nothing) when no checkpoint of that size is stored. Callers MUST pass only
        cosignatures they verified.
        """
        ...

    async def consistency_proof(self, log_id: str, size1: int, size2: int) -> list[bytes]:
        """The RFC 6962 consistency proof between two stored tree sizes of the log (0 < size1 < size2)."""
        ...

    async def latest_notes(self) -> list[tuple[str, str]]:
        """(log id, note) of every log's latest stored checkpoint, in log-id order."""
        ...
