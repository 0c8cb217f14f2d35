"""The bus contract, run against every adapter (Kafka and the local log).

Subclass :class:`BusContract` and override the ``bus`` fixture with a :class:`BusHarness`: the
adapter's publisher plus the few reads the contract needs (a Kafka consumer, or the local log's
own reader). Each test uses a topic no other test uses.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Protocol

import pytest

from sealtrail.infra.bus import BusPublisher, BusRecord, TopicSpec


class BusHarness(Protocol):
    publisher: BusPublisher

    async def read(self, topic: str, partition: int, offset: int, count: int) -> list[BusRecord]:
        """Exactly ``count`` records of the partition from ``offset`` (failing if they never come)."""
        ...

    async def end_offset(self, topic: str, partition: int) -> int: ...

    async def partitions(self, topic: str) -> int: ...

    async def reopen(self) -> None:
        """Stop every client, then start new ones (the stored records must still be there)."""
        ...


def _topic() -> str:
    return f"contract.{uuid.uuid4().hex[:12]}"


async def _read_all(bus: BusHarness, topic: str, partitions: int) -> dict[int, list[BusRecord]]:
    out = {}
    for p in range(partitions):
        end = await bus.end_offset(topic, p)
        out[p] = await bus.read(topic, p, 0, end) if end else []
    return out


def _batch(keys: Sequence[str], round_: int) -> list[tuple[bytes, bytes]]:
    return [(k.encode(), f"{k}:{round_}:{i}".encode()) for i in range(3) for k in keys]


class BusContract:
    """What every :class:`~sealtrail.infra.bus.BusPublisher` adapter guarantees."""

    @pytest.fixture
    def bus(self) -> BusHarness:
        raise NotImplementedError("an adapter's test class overrides the bus fixture")

    async def test_one_key_stays_in_one_partition_in_publish_order(self, bus: BusHarness) -> None:
        """Records of one key land in one partition, in publish order, at offsets from 0 upwards."""
        topic, keys = _topic(), [f"tenant-{i}" for i in range(8)]
        await bus.publisher.ensure_topics([TopicSpec(topic, 3)])
        sent = []
        for round_ in range(4):
            batch = _batch(keys, round_)
            await bus.publisher.publish(topic, batch)
            sent += batch
        got = await _read_all(bus, topic, 3)
        assert sum(map(len, got.values())) == len(sent)
        for recs in got.values():
            assert [r.offset for r in recs] == list(range(len(recs)))
        for key in keys:
            homes = {p for p, recs in got.items() for r in recs if r.key == key.encode()}
            assert len(homes) == 1
            values = [r.value for r in got[homes.pop()] if r.key == key.encode()]
            assert values == [v for k, v in sent if k == key.encode()]

    async def test_reading_from_an_offset_repeats_the_same_records(self, bus: BusHarness) -> None:
        """Reading again from any offset yields the very records first read there."""
        topic = _topic()
        await bus.publisher.ensure_topics([TopicSpec(topic, 1)])
        await bus.publisher.publish(topic, [(b"k", f"v{i}".encode()) for i in range(50)])
        first = await bus.read(topic, 0, 0, 50)
        for offset in (0, 1, 17, 49):
            assert await bus.read(topic, 0, offset, 50 - offset) == first[offset:]

    async def test_published_records_survive_reopen(self, bus: BusHarness) -> None:
        """Acknowledged records are there after every client is stopped and started again, and
        later records follow them."""
        topic = _topic()
        await bus.publisher.ensure_topics([TopicSpec(topic, 2)])
        await bus.publisher.publish(topic, [(b"a", b"1"), (b"b", b"2"), (b"a", b"3")])
        before = await _read_all(bus, topic, 2)
        await bus.reopen()
        await bus.publisher.publish(topic, [(b"a", b"4")])
        after = await _read_all(bus, topic, 2)
        for p, recs in before.items():
            assert after[p][:len(recs)] == recs
        assert [r.value for recs in after.values() for r in recs if r.key == b"a"] == [b"1", b"3", b"4"]

    async def test_ensure_topics_leaves_existing_topics_alone(self, bus: BusHarness) -> None:
        """Ensuring an existing topic again, even with another partition count, changes nothing."""
        topic = _topic()
        await bus.publisher.ensure_topics([TopicSpec(topic, 2)])
        await bus.publisher.publish(topic, [(b"x", b"1")])
        await bus.publisher.ensure_topics([TopicSpec(topic, 5)])
        assert await bus.partitions(topic) == 2
        got = await _read_all(bus, topic, 2)
        assert [r.value for recs in got.values() for r in recs] == [b"1"]
