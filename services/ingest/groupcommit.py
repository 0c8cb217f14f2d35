"""Group commit: concurrent batches share one publish and one receipt signature per tenant.

A producer that posts one event per request (a webhook, ``curl``, a simple gateway) would
otherwise cost one fsync of the local log (or one Kafka produce round trip) and one Ed25519
signature per event. Here every batch submitted while the previous group is being sealed or
published waits in a queue; the next group takes them all (up to ``max_group_events`` events,
always at least one batch), stamps them with one receive time, seals them, signs their receipts
once per tenant, and publishes all their records in one call. Sealing a group overlaps with
publishing the one before it; groups are published one at a time, in order, so the records of one
key keep the order in which their batches were sealed.

Contract: :meth:`GroupCommitter.submit` MUST return only after the publish holding its batch
returned (durable: fsync'd, or acknowledged by Kafka with acks=all); when that publish fails,
every batch of the group gets the error and none of its events counts as accepted (a retry with
the same event ids is safe: the ledger deduplicates). A batch whose sealing fails gets its own
error; the other batches of its group go on.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from sealtrail.errors import UnavailableError
from sealtrail.infra.auth import Principal
from services.ingest.sealer import PreparedBatch, SealedBatch, Sealer

DEFAULT_GROUP_MAX_EVENTS = 5000
"""Most events one group takes (a batch larger than this still goes, alone)."""

Publish = Callable[[list[tuple[bytes, bytes]]], Awaitable[None]]
"""Publishes records durably, or raises (``BusPublisher.publish`` bound to the sealed topic)."""
Observe = Callable[[int, int], None]
"""Told the batches and the events of each group published."""


@dataclass(slots=True)
class _Waiting:
    principal: Principal
    raw_events: list[object]
    answer: asyncio.Future[PreparedBatch]


@dataclass(slots=True)
class _Group:
    batches: list[tuple[_Waiting, PreparedBatch]]
    records: list[tuple[bytes, bytes]]


def _fail(waiting: _Waiting, error: BaseException) -> None:
    if not waiting.answer.done():  # its request may have been cancelled (client gone)
        waiting.answer.set_exception(error)


class GroupCommitter:
    """Seals, signs and publishes the batches submitted concurrently, a group at a time."""

    def __init__(self, *, sealer: Sealer, publish: Publish, max_group_events: int = DEFAULT_GROUP_MAX_EVENTS,
                 observe: Observe | None = None) -> None:
        if max_group_events < 1:
            raise ValueError("a group holds at least one event")
        self._sealer = sealer
        self._publish = publish
        self._max_events = max_group_events
        self._observe = observe
        self._queue: deque[_Waiting] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    async def submit(self, principal: Principal, raw_events: list[object]) -> PreparedBatch:
        """Seal and publish ``raw_events`` with whatever else is waiting; the batch's answer."""
        if self._closing:
            raise UnavailableError("ingest is stopping; retry later", retry_after=1.0)
        waiting = _Waiting(principal, raw_events, asyncio.get_running_loop().create_future())
        self._queue.append(waiting)
        self._wake.set()
        if self._task is None or self._task.done():  # started on first use, in the serving loop
            self._task = asyncio.create_task(self._run(), name="ingest-group-commit")
        return await waiting.answer

    async def aclose(self) -> None:
        """Finish the groups already submitted, then stop; later submits raise 503."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None

    async def _run(self) -> None:
        publishing: asyncio.Task[None] | None = None
        try:
            while self._queue or not self._closing:
                if not self._queue:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                group = await self._seal(self._take())
                if publishing is not None:
                    await publishing  # one publish at a time keeps each key's records in order
                publishing = asyncio.create_task(self._commit(group)) if group.records else None
                if not group.records:
                    self._answer(group)
        finally:
            if publishing is not None:
                await publishing
            error = UnavailableError("ingest stopped before publishing the batch; retry later", retry_after=1.0)
            while self._queue:
                _fail(self._queue.popleft(), error)

    def _take(self) -> list[_Waiting]:
        taken = [self._queue.popleft()]
        events = len(taken[0].raw_events)
        while self._queue and events + len(self._queue[0].raw_events) <= self._max_events:
            events += len(self._queue[0].raw_events)
            taken.append(self._queue.popleft())
        return taken

    async def _seal(self, taken: list[_Waiting]) -> _Group:
        received_at = self._sealer.now()
        sealed = await asyncio.gather(*(self._seal_one(w, received_at) for w in taken))
        kept = [(w, s) for w, s in zip(taken, sealed, strict=True) if s is not None]
        try:
            answers = self._sealer.sign([s for _, s in kept], received_at)
        except Exception as e:  # every batch of the group gets the error, the loop goes on
            for w, _ in kept:
                _fail(w, e)
            return _Group([], [])
        records = [r for _, s in kept for r in s.records]
        return _Group(list(zip((w for w, _ in kept), answers, strict=True)), records)

    async def _seal_one(self, waiting: _Waiting, received_at: datetime) -> SealedBatch | None:
        try:
            return await self._sealer.seal(waiting.principal, waiting.raw_events, received_at)
        except Exception as e:  # this batch's error, answered to its request only
            _fail(waiting, e)
            return None

    async def _commit(self, group: _Group) -> None:
        try:
            await self._publish(group.records)
        except Exception as e:  # nothing of the group is accepted; each request hears why
            for w, _ in group.batches:
                _fail(w, e)
            return
        if self._observe is not None:
            with contextlib.suppress(Exception):
                self._observe(len(group.batches), len(group.records))
        self._answer(group)

    @staticmethod
    def _answer(group: _Group) -> None:
        for w, answer in group.batches:
            if not w.answer.done():
                w.answer.set_result(answer)
