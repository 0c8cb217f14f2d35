"""Feeds the ledger worker from the local log (embedded default), as kafka_driver does from Kafka.

Offsets live only in the database (``consumer_offsets``), committed in the worker's transaction.
On start, and after any failed commit, each partition resumes at its stored offset, so a crash at
any instant neither loses nor repeats work. When caught up, the driver sleeps until the log says
a record was published (polling every ``poll_interval_s`` as a fallback). The local log belongs
to one process, and this driver is its only consumer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sealtrail.errors import ConcurrentWriteError, CorruptLogError, UnavailableError
from sealtrail.infra.bus import BusRecord
from sealtrail.infra.locallog import LocalLog
from services.ledger import metrics
from services.ledger.ports import LedgerStore
from services.ledger.worker import LedgerWorker

log = logging.getLogger("sealtrail.ledger")

DEFAULT_MAX_RECORDS = 5000
DEFAULT_POLL_INTERVAL_S = 0.5
_RETRY_S = 1.0


class LocalLedgerDriver:
    """Runs the worker over one topic of the local log until :meth:`stop`."""

    def __init__(self, *, log: LocalLog, topic: str, group: str, worker: LedgerWorker, store: LedgerStore,
                 max_records: int = DEFAULT_MAX_RECORDS,
                 poll_interval_s: float = DEFAULT_POLL_INTERVAL_S) -> None:
        self._log = log
        self._topic = topic
        self._group = group
        self._worker = worker
        self._store = store
        self._max_records = max_records
        self._poll_interval_s = poll_interval_s
        self._positions: dict[int, int | None] = {}
        self._resumed = False
        self._committed = asyncio.Event()
        self._stopping = asyncio.Event()

    @property
    def positions(self) -> dict[int, int | None]:
        """The next offset to consume per partition (None: from the start)."""
        return dict(self._positions)

    def backlog(self) -> int | None:
        """Records appended to the topic and not yet committed; None until the offsets are loaded."""
        if not self._resumed:
            return None
        total = 0
        for p, pos in self._positions.items():
            start = pos if pos is not None else self._log.start_offset(self._topic, p)
            total += max(0, self._log.end_offset(self._topic, p) - start)
        return total

    def committed(self) -> asyncio.Event:
        """An event set by the next commit (or resume). Take it BEFORE reading the backlog."""
        return self._committed

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """Consume until stopped. Raises CorruptLogError if a stored offset is past the log's end."""
        await self._resume(list(range(self._log.partitions(self._topic))))
        self._resumed = True
        while not self._stopping.is_set():
            changed = self._log.changed(self._topic)  # taken before reading: no wake-up is missed
            if not await self._poll_once():
                await _wait_any([changed, self._stopping], self._poll_interval_s)

    async def _resume(self, partitions: list[int]) -> None:
        stored = await self._store.load_offsets(group=self._group, topic=self._topic, partitions=partitions)
        for p in partitions:
            offset = stored.get(p)
            end = self._log.end_offset(self._topic, p)
            if offset is not None and offset > end:
                raise CorruptLogError(
                    f"partition {p} of {self._topic}: the stored offset {offset} is past the local log's"
                    f" end {end}; records the ledger consumed are missing from the log")
            self._positions[p] = offset
        self._signal_commit()
        log.info("local log %s: resuming partitions at %s", self._topic, [stored.get(p) for p in partitions])

    async def _poll_once(self) -> bool:
        progressed = False
        for p, pos in list(self._positions.items()):
            start = pos if pos is not None else self._log.start_offset(self._topic, p)
            records = await self._log.read(self._topic, p, start, max_records=self._max_records)
            if records and not self._stopping.is_set():
                await self._handle(p, records)
                progressed = True
            position = self._positions[p]
            if position is not None:
                lag = self._log.end_offset(self._topic, p) - position
                metrics.CONSUMER_LAG.labels(str(p)).set(max(0, lag))
        return progressed

    async def _handle(self, partition: int, records: list[BusRecord]) -> None:
        try:
            self._positions[partition] = await self._worker.handle(
                partition, self._positions[partition], records)
            self._signal_commit()
        except ConcurrentWriteError as e:
            log.warning("partition %d: %s; resuming at the stored offset", partition, e)
            await self._resume([partition])
        except UnavailableError as e:
            log.warning("partition %d: %s; retrying from the stored offset", partition, e)
            await _wait_any([self._stopping], _RETRY_S)
            with contextlib.suppress(UnavailableError):
                await self._resume([partition])

    def _signal_commit(self) -> None:
        self._committed.set()
        self._committed = asyncio.Event()


async def _wait_any(events: list[asyncio.Event], seconds: float) -> None:
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
