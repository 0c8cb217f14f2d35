"""The pipelined ledger on real Kafka and PostgreSQL: preparing a poll while the previous one commits
keeps every event exactly once, even when that commit fails or the ledger stops meanwhile."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path

import orjson
from prometheus_client import Histogram

from sealtrail.core.record import SealedRecord
from sealtrail.errors import UnavailableError
from sealtrail.infra.bus import BusRecord, TopicSpec
from sealtrail.infra.kafka import KafkaPublisher
from services.ledger import metrics
from services.ledger.deadletter import DeadLetterSink, SourceRecord
from services.ledger.kafka import KafkaLedgerDriver
from services.ledger.ports import LedgerStore, PartitionCommit
from services.ledger.worker import LedgerWorker, PreparedCommit
from tests.support.backends import LedgerBackend, postgres_backend
from tests.support.ledger import DelegatingStore, NoDeadLetters, sealed


class _GatedStore(DelegatingStore):
    """Delegates to a real store; commits can be held, delayed or made to fail once."""

    def __init__(self, inner: LedgerStore, *, delay_s: float = 0.0, fail_commit: int | None = None) -> None:
        super().__init__(inner)
        self._delay_s = delay_s
        self._fail_commit = fail_commit
        self.release = asyncio.Event()
        self.release.set()
        self.started: list[PartitionCommit] = []
        self.committed: list[PartitionCommit] = []
        self.failed: list[PartitionCommit] = []
        self.committed_event = asyncio.Event()
        self.hold_queries_until_committed = False

    async def existing_event_ids(self, log_id: str, event_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, int]:
        found = await self._inner.existing_event_ids(log_id, event_ids)
        if self.hold_queries_until_committed:
            await self.committed_event.wait()  # the commit in flight ends after this query read
        return found

    async def commit(self, work: PartitionCommit) -> None:
        self.started.append(work)
        await self.release.wait()
        await asyncio.sleep(self._delay_s)
        if len(self.started) == self._fail_commit:
            self.failed.append(work)
            raise UnavailableError("PostgreSQL unavailable during commit (simulated)")
        await self._inner.commit(work)
        self.committed.append(work)
        self.committed_event.set()


class _RecordingWorker(LedgerWorker):
    """Remembers the offset every prepared poll started from."""

    prepared_from: list[int | None]

    async def prepare(self, partition: int, from_offset: int | None,
                      records: Sequence[SourceRecord]) -> PreparedCommit:
        self.prepared_from.append(from_offset)
        return await super().prepare(partition, from_offset, records)


def _records(records: list[SealedRecord], first_offset: int) -> list[BusRecord]:
    return [BusRecord(topic="t", partition=0, offset=first_offset + i, key=r.log.encode(), value=r.encode())
            for i, r in enumerate(records)]


async def _check_exactly_once(backend: LedgerBackend, log_id: str, events: list[SealedRecord]) -> None:
    """One entry per distinct event id, indices contiguous from 0, the log's size agreeing."""
    expected = {r.header["event_id"] for r in events}
    rows = await backend.raw.entries(log_id)
    assert [idx for idx, *_ in rows] == list(range(len(expected)))
    assert {orjson.loads(entry)["event_id"] for _, entry, *_ in rows} == expected
    head = await backend.raw.head(log_id)
    assert head[0] == len(expected)
    assert await backend.raw.count("entries") == len(expected)
    assert await backend.raw.count("payloads") == len(expected)


async def test_a_duplicate_of_an_event_still_committing_is_not_appended_again(fresh_db_url: str) -> None:
    """An event id sequenced in poll N and repeated in poll N+1, prepared while N's commit is in flight
    (and even when that commit ends between N+1's database lookup and its use), ends as one entry."""
    async with postgres_backend(fresh_db_url) as backend:
        await backend.raw.add_tenants("acme")
        store = _GatedStore(backend.store)
        worker = LedgerWorker(store=store, dead_letters=DeadLetterSink(publisher=NoDeadLetters(), topic="dlq"),
                              group="g", topic="t")
        first = [sealed("acme") for _ in range(5)]
        assert await worker.handle(0, None, _records(first, 0)) == 5
        store.committed_event.clear()

        second = [sealed("acme") for _ in range(4)]
        third = [second[1], sealed("acme"), second[3], first[0]]
        store.release.clear()
        n = await worker.prepare(0, 5, _records(second, 5))
        in_flight = asyncio.create_task(worker.commit(n))
        store.hold_queries_until_committed = True
        prepare_next = asyncio.create_task(worker.prepare(0, 9, _records(third, 9)))
        await asyncio.sleep(0.2)  # the next prepare's lookup read the database before the commit
        assert not prepare_next.done()
        store.release.set()
        assert await in_flight == 9
        n_plus_1 = await prepare_next
        assert [len(b.entries) for b in n_plus_1.work.batches] == [1]
        assert await worker.commit(n_plus_1) == 13
        await _check_exactly_once(backend, "acme", first + second + third)


@contextlib.asynccontextmanager
async def _driving(bootstrap: str, topic: str, store: _GatedStore) -> AsyncIterator[_RecordingWorker]:
    publisher = KafkaPublisher(bootstrap=bootstrap)
    await publisher.start()
    try:
        await publisher.ensure_topics([TopicSpec(topic, 1), TopicSpec(f"{topic}.dlq", 1)])
        worker = _RecordingWorker(store=store, group=f"{topic}.ledger", topic=topic,
                                  dead_letters=DeadLetterSink(publisher=publisher, topic=f"{topic}.dlq"))
        worker.prepared_from = []
        driver = KafkaLedgerDriver(bootstrap=bootstrap, topic=topic, group=f"{topic}.ledger", worker=worker,
                                   store=store, max_records=50, fetch_min_bytes=1)
        task = asyncio.create_task(driver.run())
        try:
            yield worker
        finally:
            driver.stop()
            await asyncio.wait_for(task, timeout=30)
    finally:
        await publisher.stop()


async def _publish(bootstrap: str, topic: str, records: list[SealedRecord]) -> None:
    publisher = KafkaPublisher(bootstrap=bootstrap)
    await publisher.start()
    try:
        await publisher.ensure_topics([TopicSpec(topic, 1), TopicSpec(f"{topic}.dlq", 1)])
        await publisher.publish(topic, [(r.log.encode(), r.encode()) for r in records])
    finally:
        await publisher.stop()


async def _until(predicate: Callable[[], Awaitable[bool]], within_s: float = 60) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached in time")


async def test_a_failed_commit_drops_the_work_prepared_after_it(
    fresh_db_url: str, kafka_bootstrap: str, topic_name: str, tmp_path: Path
) -> None:
    """When commit N fails while N+1 is prepared, nothing of N+1 is committed before N is redone, and
    after the re-seek every event is logged exactly once with contiguous indices."""
    events = [sealed("acme") for _ in range(400)]
    records = events[:200] + events[150:170] + events[200:]  # duplicates across polls too
    await _publish(kafka_bootstrap, topic_name, records)
    async with postgres_backend(fresh_db_url) as backend:
        await backend.raw.add_tenants("acme")
        store = _GatedStore(backend.store, delay_s=0.05, fail_commit=3)
        group = f"{topic_name}.ledger"

        async def done() -> bool:
            stored = await backend.store.load_offsets(group=group, topic=topic_name, partitions=[0])
            return stored.get(0) == len(records)

        async with _driving(kafka_bootstrap, topic_name, store) as worker:
            await _until(done)
        assert len(store.failed) == 1
        failed = store.failed[0]
        assert failed.next_offset in worker.prepared_from  # N+1 was prepared while N was committing
        assert store.started[3].from_offset == failed.from_offset  # then dropped: N is redone first
        assert store.committed[2].from_offset == failed.from_offset
        offsets = [w.from_offset or 0 for w in store.committed]
        assert offsets == [0] + [w.next_offset for w in store.committed[:-1]]
        await _check_exactly_once(backend, "acme", events)


async def test_stop_commits_the_work_in_flight(
    fresh_db_url: str, kafka_bootstrap: str, topic_name: str, tmp_path: Path
) -> None:
    """stop() while a commit is in flight returns only after that commit is durable."""
    events = [sealed("acme") for _ in range(120)]
    await _publish(kafka_bootstrap, topic_name, events)
    async with postgres_backend(fresh_db_url) as backend:
        await backend.raw.add_tenants("acme")
        store = _GatedStore(backend.store, delay_s=0.5)
        group = f"{topic_name}.ledger"

        async def commit_started() -> bool:
            return bool(store.started)

        async with _driving(kafka_bootstrap, topic_name, store):
            await _until(commit_started)  # leaving the block stops the driver at once
        assert store.committed
        assert store.started == store.committed
        stored = await backend.store.load_offsets(group=group, topic=topic_name, partitions=[0])
        assert stored[0] == store.committed[-1].next_offset
        assert (await backend.raw.head("acme"))[0] == stored[0]


def _histogram(h: Histogram) -> tuple[float, float]:
    """(count, sum) of a histogram without labels."""
    samples = {s.name.rsplit("_", 1)[-1]: s.value for s in h.collect()[0].samples}
    return samples["count"], samples["sum"]


async def test_batch_time_is_the_polls_own_work_not_the_wait_for_the_previous_commit(fresh_db_url: str) -> None:
    """A poll prepared while the previous commit still runs (0.4 s each here) reports its own preparing
    and committing in sealtrail_ledger_batch_seconds, and its transaction in ..._commit_seconds."""
    async with postgres_backend(fresh_db_url) as backend:
        await backend.raw.add_tenants("acme")
        store = _GatedStore(backend.store, delay_s=0.4)
        worker = LedgerWorker(store=store, dead_letters=DeadLetterSink(publisher=NoDeadLetters(), topic="dlq"),
                              group="g", topic="t")
        (batches, batch_s), (commits, commit_s) = _histogram(metrics.BATCH_SECONDS), _histogram(
            metrics.COMMIT_SECONDS)
        first = await worker.prepare(0, None, _records([sealed("acme") for _ in range(5)], 0))
        in_flight = asyncio.create_task(worker.commit(first))
        second = await worker.prepare(0, 5, _records([sealed("acme") for _ in range(5)], 5))
        assert await in_flight == 5  # the second poll waited ~0.4 s for this before its own commit
        assert await worker.commit(second) == 10
        (batches2, batch_s2), (commits2, commit_s2) = _histogram(metrics.BATCH_SECONDS), _histogram(
            metrics.COMMIT_SECONDS)
        assert batches2 == batches + 2 and commits2 == commits + 2
        assert 0.8 <= commit_s2 - commit_s < 1.2
        assert 0 <= (batch_s2 - batch_s) - (commit_s2 - commit_s) < 0.2
