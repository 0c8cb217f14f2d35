"""The Kafka publisher passes the bus contract (read back with a plain Kafka consumer)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from sealtrail.infra.bus import BusRecord
from sealtrail.infra.kafka import KafkaPublisher
from tests.contract.bus_contract import BusContract


class _KafkaHarness:
    def __init__(self, bootstrap: str) -> None:
        self._bootstrap = bootstrap
        self.publisher = KafkaPublisher(bootstrap=bootstrap)
        self._consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                          auto_offset_reset="earliest")

    async def start(self) -> None:
        await self.publisher.start()
        await self._consumer.start()

    async def stop(self) -> None:
        await self.publisher.stop()
        await self._consumer.stop()

    async def read(self, topic: str, partition: int, offset: int, count: int) -> list[BusRecord]:
        tp = TopicPartition(topic, partition)
        self._consumer.assign([tp])
        self._consumer.seek(tp, offset)
        out: list[BusRecord] = []
        deadline = time.monotonic() + 15
        while len(out) < count and time.monotonic() < deadline:
            got = await self._consumer.getmany(tp, timeout_ms=200)
            out += [BusRecord(r.topic, r.partition, r.offset, r.key, r.value) for r in got.get(tp, [])]
        assert len(out) >= count, f"only {len(out)} of {count} records came back"
        return out[:count]

    async def end_offset(self, topic: str, partition: int) -> int:
        tp = TopicPartition(topic, partition)
        return int((await self._consumer.end_offsets([tp]))[tp])

    async def partitions(self, topic: str) -> int:
        admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap)
        await admin.start()
        try:
            (described,) = await admin.describe_topics([topic])
        finally:
            await admin.close()
        return len(described["partitions"])

    async def reopen(self) -> None:
        await self.stop()
        self.publisher = KafkaPublisher(bootstrap=self._bootstrap)
        self._consumer = AIOKafkaConsumer(bootstrap_servers=self._bootstrap, enable_auto_commit=False,
                                          auto_offset_reset="earliest")
        await self.start()


class TestKafkaBus(BusContract):
    @pytest.fixture
    async def bus(self, kafka_bootstrap: str) -> AsyncIterator[_KafkaHarness]:
        harness = _KafkaHarness(kafka_bootstrap)
        await harness.start()
        try:
            yield harness
        finally:
            await harness.stop()
