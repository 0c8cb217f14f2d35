"""The ledger trims the sealed topic on real Kafka and PostgreSQL: the log start offset follows the
offsets the ledger committed with its entries, and never passes them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path
from typing import cast

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from sealtrail.infra.bus import TopicSpec
from sealtrail.infra.kafka import ensure_topics
from sealtrail.infra.postgres import create_pool
from services.ledger.ports import LedgerStore
from services.ledger.postgres.store import PostgresLedgerStore
from services.ledger.trimming import KafkaTrimmer
from tests.integration.test_ledger import ledger_settings, running
from tests.support.ledger import check_log, create_tenants, produce, sealed, wait_for_checkpoint

PARTITIONS = [0, 1, 2]


async def _stored(db_url: str, group: str, topic: str) -> dict[int, int]:
    conn = await asyncpg.connect(db_url)
    try:
        rows = await conn.fetch("SELECT partition, next_offset FROM consumer_offsets"
                                " WHERE group_id = $1 AND topic = $2", group, topic)
    finally:
        await conn.close()
    return {r["partition"]: r["next_offset"] for r in rows}


class _Offsets:
    """The brokers' start and end offsets of each partition, and what a reader finds from the start."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self._topic = topic
        self._tps = [TopicPartition(topic, p) for p in PARTITIONS]
        self._consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                          auto_offset_reset="earliest")

    async def __aenter__(self) -> _Offsets:
        await self._consumer.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._consumer.stop()

    async def starts(self) -> dict[int, int]:
        got = await self._consumer.beginning_offsets(self._tps)
        return {tp.partition: o for tp, o in got.items()}

    async def ends(self) -> dict[int, int]:
        got = await self._consumer.end_offsets(self._tps)
        return {tp.partition: o for tp, o in got.items()}

    async def readable(self) -> dict[int, list[int]]:
        """Every offset a consumer reads from the beginning, per partition."""
        self._consumer.assign(self._tps)
        await self._consumer.seek_to_beginning(*self._tps)
        ends = await self.ends()
        got: dict[int, list[int]] = {p: [] for p in PARTITIONS}
        deadline = time.monotonic() + 30
        while any((got[p][-1] + 1 if got[p] else -1) < ends[p] for p in PARTITIONS if ends[p] > 0):
            assert time.monotonic() < deadline, "the topic was not read to its end in time"
            for tp, recs in (await self._consumer.getmany(timeout_ms=200)).items():
                got[tp.partition] += [r.offset for r in recs]
        return got


async def _topic_config(bootstrap: str, topic: str, name: str) -> str:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (response,) = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
        entries = response.resources[0][4]
        return str(next(e[1] for e in entries if e[0] == name))
    finally:
        await admin.close()


async def _until(check: object, what: str, within_s: float = 60) -> None:
    deadline = time.monotonic() + within_s
    while not await check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"not within {within_s} s: {what}"
        await asyncio.sleep(0.1)


async def test_sequenced_records_are_deleted_and_unsequenced_ones_kept(
    fresh_db_url: str, kafka_bootstrap: str, topic_name: str, tmp_path: Path
) -> None:
    """After sequencing, each partition's log start offset moves up to the offset the ledger
    committed; records produced while the ledger is stopped stay, every one of them readable,
    however often the trimmer runs; the sealed topic rolls its segments hourly; the restarted
    ledger sequences them all, exactly once."""
    await create_tenants(fresh_db_url, "acme", "beta")
    settings = ledger_settings(fresh_db_url, kafka_bootstrap, topic_name, tmp_path / "keys").model_copy(
        update={"ledger_trim_interval_s": 0.2})
    group = settings.ledger_group
    async with running(settings):
        await produce(kafka_bootstrap, topic_name, [sealed(t) for t in ("acme", "beta") for _ in range(300)])
        await wait_for_checkpoint(fresh_db_url, {"acme": 300, "beta": 300})
        async with _Offsets(kafka_bootstrap, topic_name) as offsets:
            async def caught_up() -> bool:
                stored = await _stored(fresh_db_url, group, topic_name)
                return bool(stored) and await offsets.starts() == {p: stored.get(p, 0) for p in PARTITIONS}

            await _until(caught_up, "the log start offsets moved up to the committed offsets")
            assert await offsets.starts() == await offsets.ends()  # all sequenced, all gone
        assert await _topic_config(kafka_bootstrap, topic_name, "segment.ms") == "3600000"  # files go hourly
    committed = await _stored(fresh_db_url, group, topic_name)

    await produce(kafka_bootstrap, topic_name, [sealed(t) for t in ("acme", "beta") for _ in range(200)])
    pool = await create_pool(fresh_db_url, min_size=1, max_size=2)
    try:
        trimmer = KafkaTrimmer(bootstrap=kafka_bootstrap, topic=topic_name, group=group,
                               store=PostgresLedgerStore(pool=pool))
        for _ in range(3):
            await trimmer.trim_once()
        await trimmer.close()
    finally:
        await pool.close()
    async with _Offsets(kafka_bootstrap, topic_name) as offsets:
        assert await offsets.starts() == {p: committed.get(p, 0) for p in PARTITIONS}
        ends = await offsets.ends()
        readable = await offsets.readable()
        assert readable == {p: list(range(committed.get(p, 0), ends[p])) for p in PARTITIONS}
        assert sum(len(v) for v in readable.values()) == 400
    async with running(settings):
        await wait_for_checkpoint(fresh_db_url, {"acme": 500, "beta": 500})
    assert await check_log(fresh_db_url, "acme") == 500
    assert await check_log(fresh_db_url, "beta") == 500


async def test_deletion_racing_the_ledger_never_passes_a_committed_offset(
    fresh_db_url: str, kafka_bootstrap: str, topic_name: str, tmp_path: Path
) -> None:
    """With the trimmer running every 50 ms while events are produced and sequenced, no sampled
    log start offset is ever above the offset committed at that moment, and every event is in
    its log exactly once at the end."""
    await create_tenants(fresh_db_url, "acme", "beta")
    settings = ledger_settings(fresh_db_url, kafka_bootstrap, topic_name, tmp_path / "keys").model_copy(
        update={"ledger_trim_interval_s": 0.05})
    group = settings.ledger_group
    samples, moved = 0, False
    async with running(settings), _Offsets(kafka_bootstrap, topic_name) as offsets:
        for _ in range(10):
            await produce(kafka_bootstrap, topic_name, [sealed(t) for t in ("acme", "beta") for _ in range(150)])
            for _ in range(3):
                starts = await offsets.starts()  # read before the stored offsets, which only grow
                stored = await _stored(fresh_db_url, group, topic_name)
                for p, start in starts.items():
                    assert start <= stored.get(p, 0), f"partition {p}: start {start} above committed {stored}"
                samples += 1
                moved = moved or any(starts.values())
        await wait_for_checkpoint(fresh_db_url, {"acme": 1500, "beta": 1500})
    assert samples == 30 and moved, "the trimmer deleted nothing while the ledger ran"
    assert await check_log(fresh_db_url, "acme") == 1500
    assert await check_log(fresh_db_url, "beta") == 1500


class _FlushingStore:
    """Stored offsets set by the test: some read back, fewer of them on disk yet."""

    def __init__(self) -> None:
        self.stored: dict[int, int] = {}
        self.durable: dict[int, int] = {}

    async def load_offsets(self, *, group: str, topic: str, partitions: Sequence[int]) -> dict[int, int]:
        return {p: o for p, o in self.stored.items() if p in partitions}

    async def durable_offsets(self, *, group: str, topic: str, partitions: Sequence[int]) -> dict[int, int]:
        return {p: o for p, o in self.durable.items() if p in partitions}


async def test_only_records_below_durable_offsets_are_deleted(kafka_bootstrap: str, topic_name: str) -> None:
    """Commits the database acknowledged but has not flushed may be taken back by its crash, and
    the ledger then reads their records again: the trimmer deletes below the durable offsets,
    not below the ones merely stored."""
    await ensure_topics(kafka_bootstrap, [TopicSpec(topic_name, partitions=len(PARTITIONS))])
    await produce(kafka_bootstrap, topic_name, [sealed(t) for t in ("acme", "beta") for _ in range(150)])
    store = _FlushingStore()
    trimmer = KafkaTrimmer(bootstrap=kafka_bootstrap, topic=topic_name, group="g",
                           store=cast(LedgerStore, store))
    try:
        async with _Offsets(kafka_bootstrap, topic_name) as offsets:
            ends = await offsets.ends()
            busy = [p for p in PARTITIONS if ends[p] >= 4]
            assert busy, ends
            store.stored = {p: ends[p] for p in busy}
            store.durable = {p: ends[p] // 2 for p in busy}
            await trimmer.trim_once()
            assert await offsets.starts() == {p: ends[p] // 2 if p in busy else 0 for p in PARTITIONS}
            store.durable = dict(store.stored)
            await trimmer.trim_once()
            assert await offsets.starts() == {p: ends[p] if p in busy else 0 for p in PARTITIONS}
    finally:
        await trimmer.close()
