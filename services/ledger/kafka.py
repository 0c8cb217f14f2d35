"""Feeds the ledger worker from Kafka: a consumer-group member with offsets kept in the database.

Kafka's own committed offsets are never used. On every assignment the driver seeks each
partition to the offset stored with the last committed batch, so a crash or a rebalance at any
instant neither loses nor repeats work. A lock keeps a revocation from interleaving with a
commit in flight.

Pipelined (the default), the driver prepares a poll (decode, checks, deduplication, sequencing)
while the previous poll's transaction commits. At most one commit is in flight, and the next one
starts only after it succeeded; positions and heads run ahead optimistically. When a commit
fails, the work prepared after it is dropped, the worker forgets its heads, and every assigned
partition resumes at its stored offset. The database thus always holds a committed prefix.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection
from contextlib import suppress

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from sealtrail.errors import ConcurrentWriteError, UnavailableError
from services.ledger import metrics
from services.ledger.deadletter import SourceRecord
from services.ledger.ports import LedgerStore
from services.ledger.worker import LedgerWorker, PreparedCommit

log = logging.getLogger("sealtrail.ledger")

DEFAULT_POLL_MAX_RECORDS = 5000
DEFAULT_POLL_TIMEOUT_MS = 100
# The broker holds a fetch until ``fetch_min_bytes`` are ready, or the poll timeout passed. Under
# load a poll then carries a thousand records or more instead of one ingest request's worth, so
# the per-transaction costs (commit, batch row, offsets, dedup query) and the broker's per-fetch
# work are shared by more entries; an idle log waits at most the poll timeout. Measured end to
# end at 17,000 events/s: 1 byte vs 1 MiB, 114 vs 92 us of machine CPU per event.
DEFAULT_FETCH_MIN_BYTES = 1024 * 1024
# Bytes fetched per partition and request. aiokafka fetches a partition again only once its
# buffered records are all taken, so a fetch that one poll drains (~4,200 records of 1 KiB
# ciphertext) is fetched again while that poll commits. A fetch larger than a poll leaves a
# remainder, and the poll after it waits for a whole fetch: measured 30% slower catch-up.
PARTITION_FETCH_BYTES = 8 * 1024 * 1024


class KafkaLedgerDriver(ConsumerRebalanceListener):  # type: ignore[misc]
    """Runs the worker over the sealed topic until :meth:`stop`."""

    def __init__(self, *, bootstrap: str, topic: str, group: str, worker: LedgerWorker,
                 store: LedgerStore, max_records: int = DEFAULT_POLL_MAX_RECORDS,
                 poll_timeout_ms: int = DEFAULT_POLL_TIMEOUT_MS, instance_id: str | None = None,
                 fetch_min_bytes: int = DEFAULT_FETCH_MIN_BYTES, pipelined: bool = True) -> None:
        self._topic = topic
        self._group = group
        self._worker = worker
        self._store = store
        self._max_records = max_records
        self._poll_timeout_ms = poll_timeout_ms
        self._lock = asyncio.Lock()
        self._positions: dict[int, int | None] = {}
        self._unseeked: set[int] = set()  # assigned while the store was unavailable
        self._assigned_at = 0.0  # wall-clock seconds of the last assignment
        self._pipelined = pipelined
        self._in_flight: asyncio.Task[int] | None = None  # the one commit running, if any
        self._stopping = asyncio.Event()
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=group, group_instance_id=instance_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest", fetch_max_wait_ms=poll_timeout_ms, fetch_min_bytes=fetch_min_bytes,
            max_partition_fetch_bytes=PARTITION_FETCH_BYTES,
            session_timeout_ms=10_000, heartbeat_interval_ms=2_000, max_poll_interval_ms=120_000,
        )

    @property
    def assigned(self) -> list[int]:
        """Partitions assigned and positioned at their stored offsets: the ones being sequenced."""
        return sorted(self._positions)

    @property
    def unpositioned(self) -> list[int]:
        """Partitions assigned but not yet seeked to their stored offsets (the store was unavailable)."""
        return sorted(self._unseeked)

    def seconds_since_fetch(self) -> float | None:
        """Seconds since the broker last answered a fetch of any assigned partition (or since the
        assignment, before the first answer); None with no partition assigned. An idle partition is
        answered every poll timeout, so this grows only while the brokers do not answer (or while
        a poll's records are still being handled: aiokafka fetches a partition again once drained)."""
        partitions = [*self._positions, *self._unseeked]
        if not partitions:
            return None
        latest = self._assigned_at
        assignment = self._consumer.assignment()
        for p in partitions:
            tp = TopicPartition(self._topic, p)
            if tp in assignment:
                stamp = self._consumer.last_poll_timestamp(tp)
                if stamp is not None:
                    latest = max(latest, stamp / 1000)
        return max(0.0, time.time() - latest)

    async def on_partitions_revoked(self, revoked: Collection[TopicPartition]) -> None:
        async with self._lock:  # waits for a poll being handled
            await self._settle()
            for tp in revoked:
                self._positions.pop(tp.partition, None)
                self._unseeked.discard(tp.partition)
            self._worker.forget()

    async def on_partitions_assigned(self, assigned: Collection[TopicPartition]) -> None:
        async with self._lock:
            await self._settle()
            # aiokafka logs and swallows a listener's exception, which would leave these partitions
            # fetched but never handled: remember them and seek again before each poll instead.
            self._unseeked.update(tp.partition for tp in assigned)
            self._assigned_at = time.time()
            await self._seek_unseeked()

    async def _seek_unseeked(self) -> None:
        if not self._unseeked:
            return
        partitions = sorted(self._unseeked)
        try:
            await self._seek_stored(partitions)
        except (UnavailableError, OSError) as e:
            log.warning("partitions %s assigned but not seeked: %s; retrying", partitions, e)
            return
        self._unseeked.difference_update(partitions)

    async def _seek_stored(self, partitions: list[int]) -> None:
        stored = await self._store.load_offsets(group=self._group, topic=self._topic, partitions=partitions)
        for p in partitions:
            tp = TopicPartition(self._topic, p)
            offset = stored.get(p)
            if offset is None:
                await self._consumer.seek_to_beginning(tp)
            else:
                self._consumer.seek(tp, offset)
            self._positions[p] = offset
        log.info("partitions %s assigned; resuming at %s", partitions, [stored.get(p) for p in partitions])

    async def run(self) -> None:
        await self._consumer.start()
        self._consumer.subscribe([self._topic], listener=self)
        try:
            while not self._stopping.is_set():
                await self._poll_once()
        finally:
            try:
                async with self._lock:
                    await self._settle()
            finally:
                await self._consumer.stop()

    def stop(self) -> None:
        self._stopping.set()

    async def _poll_once(self) -> None:
        if self._unseeked:
            async with self._lock:
                await self._seek_unseeked()
            if self._unseeked:
                await asyncio.sleep(1)
        try:
            data = await self._consumer.getmany(
                timeout_ms=self._poll_timeout_ms, max_records=self._max_records)
        except KafkaError as e:
            log.warning("poll failed: %s", type(e).__name__)
            await asyncio.sleep(1)
            return
        async with self._lock:
            handled = False
            for tp, recs in data.items():
                if tp.partition in self._positions and recs:
                    handled = True  # aiokafka's records have BusRecord's attributes
                    if not await self._handle(tp, recs):
                        break  # every partition was re-seeked: the rest of this poll is stale
            if not handled:
                await self._settle()  # idle: commit now what is in flight, and see it fail
            self._report_lag()

    async def _handle(self, tp: TopicPartition, records: list[SourceRecord]) -> bool:
        """Start the commit of ``records``; False when a failure re-seeked every partition."""
        p = tp.partition
        if not self._pipelined:
            try:
                self._positions[p] = await self._worker.handle(p, self._positions[p], records)
            except (ConcurrentWriteError, UnavailableError) as e:
                await self._recover(e)
                return False
            return True
        try:
            prepared = await self._worker.prepare(p, self._positions[p], records)
        except (ConcurrentWriteError, UnavailableError) as e:
            if await self._settle():  # (a failed settle has recovered already)
                await self._recover(e)
            return False
        except BaseException:
            with suppress(Exception):
                await self._settle()
            raise
        if not await self._settle():
            return False  # ``prepared`` continued from the failed work: drop it
        self._start(p, prepared)
        return True

    def _start(self, partition: int, prepared: PreparedCommit) -> None:
        self._in_flight = asyncio.create_task(self._worker.commit(prepared))
        self._positions[partition] = prepared.next_offset

    async def _settle(self) -> bool:
        """Wait for the commit in flight; on failure re-seek and return False."""
        task, self._in_flight = self._in_flight, None
        if task is None:
            return True
        try:
            await task
        except (ConcurrentWriteError, UnavailableError) as e:
            await self._recover(e)
            return False
        except BaseException:
            self._resume_from_store()  # (a rebalance listener's exception is swallowed)
            raise
        return True

    async def _recover(self, error: ConcurrentWriteError | UnavailableError) -> None:
        """After a failed commit: forget what ran ahead, and resume every partition at its stored offset."""
        log.warning("partitions %s: %s; resuming at the stored offsets", self.assigned, error)
        self._resume_from_store()
        if isinstance(error, UnavailableError):
            await asyncio.sleep(1)
        await self._seek_unseeked()

    def _resume_from_store(self) -> None:
        # Positions and heads ran ahead of the store: until seeked again, no partition is handled.
        self._worker.forget()
        self._unseeked.update(self._positions)
        self._positions.clear()

    def _report_lag(self) -> None:
        for p, pos in self._positions.items():
            end = self._consumer.highwater(TopicPartition(self._topic, p))
            if end is not None and pos is not None:
                metrics.CONSUMER_LAG.labels(str(p)).set(max(0, end - pos))
