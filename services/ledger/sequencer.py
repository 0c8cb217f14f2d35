"""Pure sequencing: turn deduplicated sealed records into the next batch of one log.

No I/O here. Given a log's head (size, compact range, chain head) and records that are not yet
in the log, :func:`sequence` assigns contiguous indices, builds the canonical entry bytes, leaf
hashes and chain values, extends the compact range and reports the new perfect tree nodes. The
store commits the result, with the consumed offsets, in one transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sealtrail.core.canonical import canonical_json
from sealtrail.core.chain import chain_fold, chain_seed
from sealtrail.core.merkle import CompactRange, NodeRun, leaf_hash, root_of
from sealtrail.core.record import SealedRecord
from sealtrail.errors import InvalidInputError
from services.ledger.rows import EntryColumns, entry_columns

DEFAULT_ORIGIN_PREFIX = "sealtrail.local/log"


def origin_for(log_id: str, prefix: str = DEFAULT_ORIGIN_PREFIX) -> str:
    """The checkpoint origin line of a log; fixed forever when the log is created."""
    return f"{prefix}/{log_id}"


@dataclass
class LogHead:
    """A log's committed state: everything needed to append, O(log n) in size."""

    log_id: str
    tenant_id: str
    origin: str
    compact: CompactRange
    chain_head: bytes

    @property
    def size(self) -> int:
        return self.compact.size

    @classmethod
    def empty(cls, *, log_id: str, tenant_id: str, origin: str) -> LogHead:
        return cls(log_id, tenant_id, origin, CompactRange(), chain_seed(origin))


@dataclass(frozen=True, slots=True)
class SequencedEntry:
    """One new entry: its index, exact stored bytes, leaf hash and chain value."""

    index: int
    record: SealedRecord
    entry: bytes
    leaf: bytes
    chain: bytes
    columns: EntryColumns


@dataclass(frozen=True)
class SequencedBatch:
    """The next batch of one log, and the head after it."""

    log_id: str
    first_index: int
    entries: list[SequencedEntry]
    runs: list[NodeRun]
    batch_root: bytes
    before_size: int
    after: LogHead

    @property
    def tree_root(self) -> bytes:
        return self.after.compact.root()


def entry_bytes(header: dict[str, object], index: int) -> bytes:
    """RFC 8785 bytes of the header with the assigned index: exactly what is stored and hashed."""
    if "index" in header:
        raise InvalidInputError("header already carries an index", pointer="/header/index")
    return canonical_json({**header, "index": index})


def sequence(
    head: LogHead, records: Sequence[SealedRecord], columns: Sequence[EntryColumns] | None = None
) -> SequencedBatch:
    """Sequence ``records`` after ``head``. Records MUST be new to the log and distinct by event id.

    ``columns`` are the records' already checked header columns (computed here when absent).
    ``head`` is not modified; the returned batch carries the head after it.
    """
    if columns is None:
        columns = [entry_columns(r) for r in records]
    first = head.size
    entries_bytes = [entry_bytes(r.header, first + i) for i, r in enumerate(records)]
    leaves = [leaf_hash(e) for e in entries_bytes]
    chains = chain_fold(head.chain_head, leaves)
    compact = head.compact.copy()
    runs = compact.extend(leaves)
    entries = [
        SequencedEntry(first + i, r, e, lf, c, cols)
        for i, (r, e, lf, c, cols) in enumerate(zip(records, entries_bytes, leaves, chains, columns, strict=True))
    ]
    chain_after = chains[-1] if chains else head.chain_head
    after = LogHead(head.log_id, head.tenant_id, head.origin, compact, chain_after)
    return SequencedBatch(head.log_id, first, entries, runs, root_of(leaves), first, after)
