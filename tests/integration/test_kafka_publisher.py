"""The Kafka publisher against a real broker: whole batches, key-to-partition placement, order,
several record batches per publish, and a stopped broker."""

from __future__ import annotations

import asyncio
import os
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from sealtrail.devstack import KafkaServer
from sealtrail.errors import UnavailableError
from sealtrail.infra.bus import TopicSpec
from sealtrail.infra.kafka import KafkaPublisher, group_by_key, partition_for
from services.ingest.config import MAX_BATCH_EVENTS, MAX_BODY_BYTES

PARTITIONS = 4
Placed = dict[int, list[tuple[bytes, bytes]]]


@pytest.fixture
async def publisher(kafka_bootstrap: str, topic_name: str) -> AsyncIterator[KafkaPublisher]:
    pub = KafkaPublisher(bootstrap=kafka_bootstrap)
    await pub.start()
    try:
        await pub.ensure_topics([TopicSpec(topic_name, PARTITIONS)])
        yield pub
    finally:
        await pub.stop()


async def _placed(bootstrap: str, topic: str, partitions: int = PARTITIONS) -> Placed:
    """Every (key, value) per partition, in offset order."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: Placed = defaultdict(list)
        deadline = asyncio.get_running_loop().time() + 20
        while any([await consumer.position(tp) < ends[tp] for tp in tps]):
            assert asyncio.get_running_loop().time() < deadline, "the topic was not read to its end"
            for tp, recs in (await consumer.getmany(*tps, timeout_ms=500)).items():
                out[tp.partition] += [(r.key or b"", r.value or b"") for r in recs]
        return out
    finally:
        await consumer.stop()


def _records(keys: Sequence[bytes], per_key: int, value_bytes: int) -> list[tuple[bytes, bytes]]:
    """Keys interleaved, each value unique and padded to ``value_bytes``."""
    out = []
    for i in range(per_key):
        for k in keys:
            head = b"%s:%06d:" % (k, i)
            out.append((k, head + b"v" * max(0, value_bytes - len(head))))
    return out


def _count_batches(publisher: KafkaPublisher, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Records per record batch the publisher hands to its producer, appended as it does."""
    producer = publisher._producer
    submit = producer.send_batch
    sizes: list[int] = []

    async def counting(batch: Any, topic: str, *, partition: int) -> Any:
        sizes.append(batch.record_count())
        return await submit(batch, topic, partition=partition)

    monkeypatch.setattr(producer, "send_batch", counting)
    return sizes


def _assert_placed_per_key(placed: Placed, sent: Sequence[tuple[bytes, bytes]]) -> None:
    """Each key's records are in the default partitioner's partition for it, in publish order."""
    expected = group_by_key(sent)
    assert sum(map(len, placed.values())) == len(sent)
    for key, values in expected.items():
        home = partition_for(key, range(PARTITIONS))
        assert [v for k, v in placed[home] if k == key] == values
        assert all(k != key for p, recs in placed.items() if p != home for k, _ in recs)


async def test_one_key_lands_whole_and_in_order_in_its_partition(
    publisher: KafkaPublisher, kafka_bootstrap: str, topic_name: str
) -> None:
    """An ingest-sized batch (500 records of ~1.4 KB, one key) lands in one partition, in order,
    byte for byte."""
    sent = _records([b"tenant-a"], 500, 1400)
    await publisher.publish(topic_name, sent)
    placed = await _placed(kafka_bootstrap, topic_name)
    assert list(placed) == [partition_for(b"tenant-a", range(PARTITIONS))]
    assert placed[partition_for(b"tenant-a", range(PARTITIONS))] == sent


async def test_a_key_keeps_the_partition_that_per_record_sends_gave_it(
    publisher: KafkaPublisher, kafka_bootstrap: str, topic_name: str
) -> None:
    """For many keys, the partition a whole-batch publish picks is the one aiokafka's own
    ``send()`` with the default partitioner picks, so a log does not move when publishing changes."""
    keys = [f"tenant-{i}".encode() for i in range(40)]
    plain = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await plain.start()
    try:
        by_send = {k: (await (await plain.send(topic_name, value=b"send", key=k))).partition for k in keys}
    finally:
        await plain.stop()
    await publisher.publish(topic_name, [(k, b"batch") for k in keys])
    placed = await _placed(kafka_bootstrap, topic_name)
    by_batch = {k: p for p, recs in placed.items() for k, v in recs if v == b"batch"}
    assert by_batch == by_send
    assert len(set(by_send.values())) > 1


async def test_several_keys_in_one_publish_each_keep_partition_and_order(
    publisher: KafkaPublisher, kafka_bootstrap: str, topic_name: str
) -> None:
    """Interleaved keys in one publish, repeated: each key's records stay in its partition in
    the order published across calls."""
    keys = [f"log-{i}".encode() for i in range(9)]
    sent = []
    for round_ in range(3):
        batch = _records(keys, 20, 200 + round_)
        await publisher.publish(topic_name, batch)
        sent += batch
    _assert_placed_per_key(await _placed(kafka_bootstrap, topic_name), sent)


async def test_a_publish_larger_than_one_record_batch_is_split_and_kept_in_order(
    kafka_bootstrap: str, topic_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With record batches capped at 16 KiB, 500 records of 1.4 KB need ~45 of them per key;
    all arrive, in order."""
    pub = KafkaPublisher(bootstrap=kafka_bootstrap, max_batch_bytes=16 * 1024)
    await pub.start()
    try:
        await pub.ensure_topics([TopicSpec(topic_name, PARTITIONS)])
        sizes = _count_batches(pub, monkeypatch)
        sent = _records([b"tenant-a", b"tenant-b"], 500, 1400)
        await pub.publish(topic_name, sent)
        assert len(sizes) >= 2 * 40 and sum(sizes) == len(sent)
        _assert_placed_per_key(await _placed(kafka_bootstrap, topic_name), sent)
    finally:
        await pub.stop()


async def test_the_largest_ingest_request_goes_through_with_the_default_limits(
    publisher: KafkaPublisher, kafka_bootstrap: str, topic_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The most events one request may carry, filling the largest body ingest accepts (8 MiB),
    is published under one key with the default batch and request limits (in 1 MiB batches),
    while a 500-event request of ~1.4 KB records goes as a single batch."""
    sizes = _count_batches(publisher, monkeypatch)
    await publisher.publish(topic_name, _records([b"tenant-usual"], 500, 1400))
    assert sizes == [500]
    sent = _records([b"tenant-big"], MAX_BATCH_EVENTS, MAX_BODY_BYTES // MAX_BATCH_EVENTS)
    await publisher.publish(topic_name, sent)
    assert len(sizes) - 1 >= 8 and sum(sizes[1:]) == len(sent)
    sent = _records([b"tenant-usual"], 500, 1400) + sent
    _assert_placed_per_key(await _placed(kafka_bootstrap, topic_name), sent)


async def test_concurrent_publishes_to_one_key_each_keep_their_order(
    publisher: KafkaPublisher, kafka_bootstrap: str, topic_name: str
) -> None:
    """Publishes racing on one key all land; each one's records are contiguous and in order."""
    calls = [[(b"tenant-a", b"%02d:%04d" % (c, i)) for i in range(300)] for c in range(12)]
    await asyncio.gather(*(publisher.publish(topic_name, call) for call in calls))
    (values,) = ([v for _, v in recs] for recs in (await _placed(kafka_bootstrap, topic_name)).values())
    assert sorted(values) == sorted(v for call in calls for _, v in call)
    for start in range(0, len(values), 300):
        assert values[start:start + 300] == [v for _, v in calls[int(values[start][:2])]]


async def test_publish_before_start_is_unavailable(kafka_bootstrap: str, topic_name: str) -> None:
    """A publisher that was never started refuses to publish with UnavailableError."""
    with pytest.raises(UnavailableError):
        await KafkaPublisher(bootstrap=kafka_bootstrap).publish(topic_name, [(b"k", b"v")])


async def test_a_stopped_broker_is_unavailable_within_the_timeout_and_recovers(
    kafka_bootstrap: str, kafka_server: KafkaServer | None, topic_name: str, tmp_path: Path
) -> None:
    """With the broker stopped, publish raises UnavailableError (with retry_after) within its
    timeout; once the broker is back, the same publisher delivers again."""
    private: KafkaServer | None = None
    if kafka_server is None:  # an external broker cannot be stopped here: start a private one
        private = KafkaServer(datadir=tmp_path / "kafka")
        await asyncio.to_thread(private.start)
        kafka_server, kafka_bootstrap = private, private.bootstrap
    pub = KafkaPublisher(bootstrap=kafka_bootstrap, timeout_s=3)
    await pub.start()
    try:
        await pub.ensure_topics([TopicSpec(topic_name, 1)])
        await pub.publish(topic_name, [(b"k", b"before")])
        await asyncio.to_thread(kafka_server.stop)
        try:
            started = asyncio.get_running_loop().time()
            with pytest.raises(UnavailableError) as raised:
                await pub.publish(topic_name, _records([b"k"], 50, 100))
            assert raised.value.retry_after and raised.value.retry_after > 0
            assert asyncio.get_running_loop().time() - started < 3 + 1
        finally:
            await asyncio.to_thread(kafka_server.start)
        deadline = asyncio.get_running_loop().time() + 60
        while True:
            try:
                await pub.publish(topic_name, [(b"k", b"after")])
                break
            except UnavailableError:
                assert asyncio.get_running_loop().time() < deadline, "no delivery 60 s after restart"
        values = [v for recs in (await _placed(kafka_bootstrap, topic_name, 1)).values() for _, v in recs]
        assert values[0] == b"before" and values[-1] == b"after"
    finally:
        await pub.stop()
        if private is not None:
            await asyncio.to_thread(private.stop)


def test_partition_for_matches_the_default_partitioner_for_any_partition_order() -> None:
    """The partition depends on the key and the partition count only, not on set order."""
    for n in (1, 3, 4, 12):
        for key in (b"", b"a", b"tenant-1", os.urandom(33)):
            assert partition_for(key, list(reversed(range(n)))) == partition_for(key, set(range(n)))
            assert 0 <= partition_for(key, range(n)) < n
