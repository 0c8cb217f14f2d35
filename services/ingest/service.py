"""The ingest service object: back-pressure, publishing, and the answer only after Kafka's ack."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager

from sealtrail.errors import BackpressureError, UnavailableError
from sealtrail.infra.apikeys import Authenticator
from sealtrail.infra.auth import Principal
from sealtrail.infra.bus import BusPublisher
from services.ingest.config import IngestOptions
from services.ingest.groupcommit import GroupCommitter
from services.ingest.metrics import IngestMetrics
from services.ingest.sealer import PreparedBatch, Sealer

log = logging.getLogger("sealtrail.ingest")


Admission = Callable[[int], AbstractAsyncContextManager[None]]
"""Admits a batch of n events before any work is done on it (it may wait, or raise
:class:`BackpressureError`); the batch is sealed and published inside the block."""


class IngestService:
    """Seals a batch and publishes its records; MUST NOT report an event accepted before the ack.

    Batches submitted concurrently are sealed, signed and published together
    (:class:`~services.ingest.groupcommit.GroupCommitter`): one publish, one fsync or Kafka
    acknowledgement, and one receipt signature per tenant for the whole group.

    At most ``options.max_in_flight`` batches are sealed or published at once; one more raises
    :class:`BackpressureError` (429). An ``admission`` hook (the embedded default's ledger backlog)
    may hold or refuse a batch before it is validated or sealed, so a refused batch costs nothing.
    When Kafka does not acknowledge, :class:`UnavailableError` (503) is raised, and for
    ``unavailable_retry_after_s`` afterwards new batches fail fast with 503 instead of piling up
    behind the dead broker.
    """

    def __init__(
        self, *, sealer: Sealer, authenticator: Authenticator, publisher: BusPublisher, topic: str,
        options: IngestOptions, metrics: IngestMetrics, ping_db: Callable[[], Awaitable[None]],
        vkey: str, admission: Admission | None = None,
    ) -> None:
        self.sealer = sealer
        self.authenticator = authenticator
        self.publisher = publisher
        self.topic = topic
        self.options = options
        self.metrics = metrics
        self.vkey = vkey
        self.publisher_started = False
        self._ping_db = ping_db
        self._admission = admission
        self._in_flight = 0
        self._unavailable_until = 0.0
        self.committer = GroupCommitter(sealer=sealer, publish=self._publish,
                                        max_group_events=options.max_group_events, observe=self._observe_group)

    async def submit(self, principal: Principal, raw_events: list[object]) -> PreparedBatch:
        """Seal, publish and return the batch; raises before any event counts as accepted."""
        self._fail_fast_while_unavailable()
        if self._in_flight >= self.options.max_in_flight:
            raise BackpressureError("too many batches in flight; retry later",
                                    retry_after=self.options.backpressure_retry_after_s)
        self._in_flight += 1
        self.metrics.in_flight.inc()
        try:
            async with self._admission(len(raw_events)) if self._admission else contextlib.nullcontext():
                batch = await self.committer.submit(principal, raw_events)
        finally:
            self._in_flight -= 1
            self.metrics.in_flight.dec()
        self._count(batch, len(raw_events))
        return batch

    async def close(self) -> None:
        """Publish the groups already submitted; later batches are answered 503."""
        await self.committer.aclose()

    async def _publish(self, records: list[tuple[bytes, bytes]]) -> None:
        """Publish one group's records (see :meth:`submit` for what a failure means)."""
        started = time.perf_counter()
        try:
            await self.publisher.publish(self.topic, records)
        except UnavailableError as e:
            retry = max(e.retry_after, self.options.unavailable_retry_after_s)
            self._unavailable_until = time.monotonic() + retry
            log.warning("kafka did not acknowledge a batch", extra={"events": len(records)})
            raise UnavailableError("Kafka did not acknowledge the batch; nothing of it is accepted",
                                   retry_after=retry) from e
        self._unavailable_until = 0.0
        self.metrics.produce_seconds.observe(time.perf_counter() - started)

    def _observe_group(self, batches: int, events: int) -> None:
        self.metrics.group_batches.observe(batches)

    def _fail_fast_while_unavailable(self) -> None:
        left = self._unavailable_until - time.monotonic()
        if left > 0:
            raise UnavailableError("Kafka is unreachable; retry later", retry_after=left)

    def _count(self, batch: PreparedBatch, size: int) -> None:
        self.metrics.batch_events.observe(size)
        if batch.accepted:
            self.metrics.accepted.inc(len(batch.accepted))
        for r in batch.rejected:
            self.metrics.rejected.labels(reason=r.type.rsplit("/", 1)[-1]).inc()

    async def ready(self) -> dict[str, bool]:
        """Whether the producer is started and its last publish did not just fail (batches
        answer 503 meanwhile), and whether the database answers."""
        try:
            await self._ping_db()
            db = True
        except UnavailableError:
            db = False
        producing = self.publisher_started and time.monotonic() >= self._unavailable_until
        return {"kafka_producer": producing, "database": db}
