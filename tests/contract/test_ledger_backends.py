"""End-to-end contract: the ledger over (Kafka, PostgreSQL) and over (local log, SQLite) logs the
same input into byte-identical entries, trees and heads."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from sealtrail.core.record import SealedRecord
from sealtrail.infra.bus import BusPublisher, TopicSpec
from sealtrail.infra.kafka import KafkaPublisher
from sealtrail.infra.locallog import LocalLog
from services.ledger import metrics
from services.ledger.checkpointer import Checkpointer
from services.ledger.deadletter import DeadLetterSink
from services.ledger.kafka import KafkaLedgerDriver
from services.ledger.locallog import LocalLedgerDriver
from services.ledger.worker import LedgerWorker, LookupPolicy
from tests.support.backends import LedgerBackend, postgres_backend, sqlite_backend
from tests.support.ledger import sealed

Driver = KafkaLedgerDriver | LocalLedgerDriver


def _input() -> list[list[SealedRecord]]:
    """Publish calls: two tenants interleaved, a repeated event, an unknown tenant, a poison record."""
    acme, beta = [sealed("acme") for _ in range(300)], [sealed("beta") for _ in range(120)]
    bad = sealed("acme")
    bad.header["occurred_at"] = "yesterday"
    return [acme[:100] + beta[:60], [acme[5], sealed("nobody"), bad], acme[100:] + beta[60:], acme[:3]]


@contextlib.asynccontextmanager
async def _running(driver: Driver) -> AsyncIterator[None]:
    task = asyncio.create_task(driver.run())
    try:
        yield
    finally:
        driver.stop()
        await asyncio.wait_for(task, timeout=30)


async def _until(backend: LedgerBackend, sizes: dict[str, int]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        got = {info.log_id: info.size for tenant in sizes for info in await backend.reader.logs(tenant)}
        if got == sizes:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{backend.name} did not reach {sizes}")


async def _log(backend: LedgerBackend, publisher: BusPublisher, topic: str, batches: list[list[SealedRecord]],
               make_driver: Callable[[LedgerWorker], Driver], tmp: Path, lookup: LookupPolicy) -> None:
    await backend.raw.add_tenants("acme", "beta")
    await publisher.ensure_topics([TopicSpec(topic, 3), TopicSpec(f"{topic}.dlq", 1)])
    worker = LedgerWorker(store=backend.store, group=f"{topic}.ledger", topic=topic,
                          dead_letters=DeadLetterSink(publisher=publisher, topic=f"{topic}.dlq"),
                          lookup_duplicates=lookup)
    retries = metrics.DUPLICATE_RETRIES._value.get()
    async with _running(make_driver(worker)):
        for batch in batches:
            await publisher.publish(topic, [(r.log.encode(), r.encode()) for r in batch])
        await _until(backend, {"acme": 300, "beta": 120})
    # The last publish repeats three committed events: found by a lookup, or by a refused commit.
    assert (metrics.DUPLICATE_RETRIES._value.get() > retries) == (lookup == "after_conflict")
    checkpointer = Checkpointer(store=backend.checkpoints, key_dir=tmp / backend.name)
    await checkpointer.ensure_keys()
    await checkpointer.tick()


async def _both(fresh_db_url: str, kafka_bootstrap: str, topic: str, tmp_path: Path,
                check: Callable[[LedgerBackend, LedgerBackend], Awaitable[None]],
                lookup: LookupPolicy = "always") -> None:
    batches = _input()
    kafka, local = KafkaPublisher(bootstrap=kafka_bootstrap), LocalLog(root=tmp_path / "log")
    await kafka.start()
    await local.start()
    try:
        async with postgres_backend(fresh_db_url) as pg, sqlite_backend(tmp_path / "ledger.db") as lite:
            await _log(pg, kafka, topic, batches, lambda w: KafkaLedgerDriver(
                bootstrap=kafka_bootstrap, topic=topic, group=f"{topic}.ledger", worker=w, store=pg.store,
                max_records=70), tmp_path, lookup)
            await _log(lite, local, topic, batches, lambda w: LocalLedgerDriver(
                log=local, topic=topic, group=f"{topic}.ledger", worker=w, store=lite.store,
                max_records=70), tmp_path, lookup)
            await check(pg, lite)
    finally:
        await kafka.stop()
        await local.stop()


@pytest.mark.parametrize("lookup", ["always", "after_conflict"])
async def test_both_pairs_log_byte_identical_entries_and_roots(
    fresh_db_url: str, kafka_bootstrap: str, topic_name: str, tmp_path: Path, lookup: LookupPolicy
) -> None:
    """The same records (with a repeat, an unknown tenant and a poison record among them), run
    through the same ledger worker over Kafka + PostgreSQL and over local log + SQLite, give
    byte-identical entries, chain values, stored tree nodes, roots, chain heads and checkpoint
    bodies (only the signatures differ: each pair has its own keys), whether every poll's event ids
    are looked up or repeats are found by a refused commit."""
    async def check(pg: LedgerBackend, lite: LedgerBackend) -> None:
        for log_id in ("acme", "beta"):
            assert await pg.raw.entries(log_id) == await lite.raw.entries(log_id)
            assert await pg.raw.nodes(log_id) == await lite.raw.nodes(log_id)
            assert await pg.raw.head(log_id) == await lite.raw.head(log_id)
            a, b = await pg.reader.latest_checkpoint(log_id, log_id), await lite.reader.latest_checkpoint(
                log_id, log_id)
            assert a.note.split("\n\n")[0] == b.note.split("\n\n")[0]
            for size in (1, 77, 120):
                assert (await pg.reader.consistency_proof(log_id, log_id, size, 120)
                        == await lite.reader.consistency_proof(log_id, log_id, size, 120))
        assert await pg.raw.count("entries") == await lite.raw.count("entries") == 420

    await _both(fresh_db_url, kafka_bootstrap, topic_name, tmp_path, check, lookup)
