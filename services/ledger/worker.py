"""The ledger's core loop body: one partition's poll in, one atomic commit out.

Independent of the bus technology: the Kafka driver and the embedded local-log driver both feed
:meth:`LedgerWorker.handle` with the records of one partition, starting at the stored offset. The
Kafka driver calls its two halves separately (:meth:`LedgerWorker.prepare` of the next poll while
the previous poll's :meth:`LedgerWorker.commit` runs), so the ledger computes while the database writes.

Deduplication against committed entries is either a lookup of every poll's event ids before it is
sequenced (``lookup_duplicates="always"``) or left to the store's uniqueness of event ids per log
(``"after_conflict"``): a commit that would log a known event id fails as a whole
(:class:`~sealtrail.errors.DuplicateEventError`), the caller re-reads from the stored offset, and
for :data:`CAREFUL_S` seconds every poll is looked up first, so the repeat is found and skipped. A
repeated event id is rare (a client retrying a batch whose answer it lost); the lookup costs every
poll a query that reads one index entry per record.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from sealtrail.core.record import SealedRecord, decode_record
from sealtrail.errors import ConcurrentWriteError, DuplicateEventError, InvalidInputError
from services.ledger import metrics
from services.ledger.deadletter import DeadLetter, DeadLetterSink, SourceRecord
from services.ledger.ports import LedgerStore, PartitionCommit
from services.ledger.rows import EntryColumns, entry_columns
from services.ledger.sequencer import DEFAULT_ORIGIN_PREFIX, LogHead, SequencedBatch, origin_for, sequence

log = logging.getLogger("sealtrail.ledger")


_Item = tuple[SealedRecord, EntryColumns, SourceRecord]

# After a commit refused for a repeated event id, how long every poll's ids are looked up first.
CAREFUL_S = 60.0
LookupPolicy = Literal["always", "after_conflict"]


@dataclass
class _Sorted:
    # log id -> (record, its checked columns, where it came from), in offset order
    by_log: dict[str, list[_Item]] = field(default_factory=dict)
    dead: list[DeadLetter] = field(default_factory=list)


@dataclass(frozen=True)
class PreparedCommit:
    """One partition's poll, sequenced and ready for :meth:`LedgerWorker.commit`."""

    work: PartitionCommit
    record_count: int
    dead_reasons: list[str]
    prepare_s: float  # time spent preparing it

    @property
    def next_offset(self) -> int:
        return self.work.next_offset


class LedgerWorker:
    """Sequences and commits records; keeps each written log's head (O(log n)) in memory."""

    def __init__(self, *, store: LedgerStore, dead_letters: DeadLetterSink, group: str, topic: str,
                 origin_prefix: str = DEFAULT_ORIGIN_PREFIX, lookup_duplicates: LookupPolicy = "always",
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._lookup_always = lookup_duplicates == "always"
        self._clock = clock
        self._careful_until = float("-inf")
        self._dead = dead_letters
        self._group = group
        self._topic = topic
        self._origin_prefix = origin_prefix
        # Heads after the last work prepared (committed or not), and per log the event ids of
        # prepared work not yet committed.
        self._heads: dict[str, LogHead] = {}
        self._uncommitted: dict[str, set[uuid.UUID]] = {}

    def forget(self) -> None:
        """Drop cached heads and uncommitted state (after a failed commit or a rebalance).

        Heads are reloaded from the store on demand. The caller MUST NOT commit any work prepared
        before this call.
        """
        self._heads.clear()
        self._uncommitted.clear()

    async def handle(self, partition: int, from_offset: int | None, records: Sequence[SourceRecord]) -> int:
        """Log ``records`` (one partition, in offset order) and return the next offset committed.

        Raises ConcurrentWriteError (nothing committed; cached heads dropped) when another writer
        advanced the partition or a log first, or (DuplicateEventError) when an event id is already
        logged; either way the caller re-seeks to the stored offset.
        """
        return await self.commit(await self.prepare(partition, from_offset, records))

    async def prepare(self, partition: int, from_offset: int | None,
                      records: Sequence[SourceRecord]) -> PreparedCommit:
        """Check, deduplicate and sequence ``records`` (one partition, in offset order); send dead letters.

        The heads advance optimistically, so the next prepare continues from this one before it is
        committed, and its event ids count as known to the next prepare's deduplication. Prepared
        work MUST be committed in the order prepared, each only after the previous one's commit
        succeeded; after any failure, call :meth:`forget` and drop the work not yet committed.
        """
        started = time.perf_counter()
        sorted_ = _sort(records)
        try:
            await self._refuse_unknown_tenants(sorted_)
            heads, new_logs = await self._heads_for(list(sorted_.by_log))
            batches = [b for log_id, recs in sorted_.by_log.items()
                       if (b := await self._sequence_new(heads[log_id], recs)) is not None]
            await self._dead.send(sorted_.dead)
        except BaseException:
            self.forget()  # heads and ids of a half-prepared poll that will never be committed
            raise
        work = PartitionCommit(self._group, self._topic, partition, from_offset,
                               records[-1].offset + 1, batches, new_logs)
        return PreparedCommit(work, len(records), [d.reason for d in sorted_.dead], time.perf_counter() - started)

    async def commit(self, prepared: PreparedCommit) -> int:
        """Commit prepared work atomically and return the next offset committed.

        On any failure nothing of it is committed, and the heads and uncommitted state are dropped
        (:meth:`forget`): the caller re-seeks to the stored offsets.
        """
        work = prepared.work
        started = time.perf_counter()
        try:
            await self._store.commit(work)
        except DuplicateEventError:
            metrics.DUPLICATE_RETRIES.inc()
            self._careful_until = self._clock() + CAREFUL_S
            log.info("a repeated event id refused a commit; looking event ids up first for %.0f s", CAREFUL_S)
            self.forget()
            raise
        except ConcurrentWriteError:
            metrics.CONFLICTS.inc()
            self.forget()
            raise
        except BaseException:
            self.forget()
            raise
        for b in work.batches:
            pending = self._uncommitted.get(b.log_id)
            if pending is not None:
                pending.difference_update(e.columns.event_id for e in b.entries)
                if not pending:
                    del self._uncommitted[b.log_id]
            metrics.ENTRIES.labels(b.log_id).inc(len(b.entries))
        for reason in prepared.dead_reasons:
            metrics.DEAD_LETTERS.labels(reason.split(":")[0]).inc()
        metrics.BATCH_SIZE.observe(prepared.record_count)
        commit_s = time.perf_counter() - started
        metrics.COMMIT_SECONDS.observe(commit_s)
        metrics.BATCH_SECONDS.observe(prepared.prepare_s + commit_s)  # not the wait for the previous commit
        return work.next_offset

    async def _refuse_unknown_tenants(self, s: _Sorted) -> None:
        unknown = [lid for lid in s.by_log if lid not in self._heads]
        if not unknown:
            return
        tenants = {str(s.by_log[lid][0][0].header["tenant"]) for lid in unknown}
        known = await self._store.tenants_exist(sorted(tenants))
        for lid in unknown:
            if s.by_log[lid][0][0].header["tenant"] not in known:
                refused = s.by_log.pop(lid)
                s.dead += [DeadLetter(src, "unknown tenant", "/header/tenant") for _, _, src in refused]

    async def _heads_for(self, log_ids: list[str]) -> tuple[dict[str, LogHead], list[LogHead]]:
        missing = [lid for lid in log_ids if lid not in self._heads]
        if missing:
            self._heads.update(await self._store.load_heads(missing))
        new_logs = []
        for lid in log_ids:
            if lid not in self._heads:
                origin = origin_for(lid, self._origin_prefix)
                head = LogHead.empty(log_id=lid, tenant_id=lid.split("/")[0], origin=origin)
                new_logs.append(head)
                self._heads[lid] = head
        return {lid: self._heads[lid] for lid in log_ids}, new_logs

    async def _sequence_new(self, head: LogHead, records: list[_Item]) -> SequencedBatch | None:
        unique: dict[uuid.UUID, tuple[SealedRecord, EntryColumns]] = {}
        for r, cols, _ in records:
            unique.setdefault(cols.event_id, (r, cols))
        # Read the uncommitted ids BEFORE asking the store: an id whose commit ends meanwhile
        # leaves this set only once it is committed, so the query (issued later) sees it.
        pending = self._uncommitted.get(head.log_id, set())
        in_flight = [eid for eid in unique if eid in pending]
        lookup = head.size > 0 and (self._lookup_always or self._clock() < self._careful_until)
        known = await self._store.existing_event_ids(head.log_id, list(unique)) if lookup else {}
        for event_id, index in known.items():
            log.debug("duplicate event %s already at index %d of %s", event_id, index, head.log_id)
        for event_id in in_flight:
            log.debug("duplicate event %s already sequenced in %s, not yet committed", event_id, head.log_id)
        duplicate = known.keys() | in_flight
        metrics.DUPLICATES.inc(len(records) - len(unique) + len(duplicate))
        fresh = [rc for eid, rc in unique.items() if eid not in duplicate]
        if not fresh:
            return None
        batch = sequence(head, [r for r, _ in fresh], [c for _, c in fresh])
        self._heads[head.log_id] = batch.after
        self._uncommitted.setdefault(head.log_id, set()).update(c.event_id for _, c in fresh)
        return batch


def _sort(records: Sequence[SourceRecord]) -> _Sorted:
    out = _Sorted()
    by_log = out.by_log
    for r in records:
        try:
            rec = decode_record(r.value)
            cols = entry_columns(rec)
            key = r.key
            if key is not None and key != rec.log.encode():
                raise InvalidInputError("message key is not the record's log id", pointer="/log")
        except InvalidInputError as e:
            out.dead.append(DeadLetter(r, f"invalid record: {e.detail}", e.pointer))
            continue
        items = by_log.get(rec.log)
        if items is None:
            items = by_log[rec.log] = []
        items.append((rec, cols, r))
    return out
