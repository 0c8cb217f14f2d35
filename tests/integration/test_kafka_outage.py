"""The Kafka publisher under load through a broker outage: it answers again once the broker is back.

An idempotent producer numbers its batches per partition. When the broker goes away with batches
in flight and they are given up on, the numbers they took are never written, and a broker that
comes back refuses every later batch of that producer as out of sequence, for good. The publisher
must start over with a new producer (a new producer id) after a publish it could not complete.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from sealtrail.devstack import KafkaServer
from sealtrail.errors import UnavailableError
from sealtrail.infra.bus import TopicSpec
from sealtrail.infra.kafka import KafkaPublisher
from tests.support.ingest import read_topic

pytestmark = pytest.mark.services
TOPIC = "outage.sealed"


async def test_publishing_recovers_after_an_outage_with_batches_in_flight(tmp_path: Path) -> None:
    server = KafkaServer(datadir=tmp_path / "kafka")
    await asyncio.to_thread(server.start)
    publisher = KafkaPublisher(bootstrap=server.bootstrap, timeout_s=2.0)
    acknowledged: list[bytes] = []
    failures = 0
    counter = 0

    async def publish_one() -> None:
        nonlocal failures, counter
        counter += 1
        values = [f"{counter}:{i}".encode() + b"x" * 1000 for i in range(100)]
        try:
            await publisher.publish(TOPIC, [(b"log-1", v) for v in values])
        except UnavailableError:
            failures += 1
        else:
            acknowledged.extend(values)

    async def load(seconds: float) -> None:
        tasks = []
        end = asyncio.get_running_loop().time() + seconds
        while asyncio.get_running_loop().time() < end:
            tasks.append(asyncio.create_task(publish_one()))
            await asyncio.sleep(0.05)  # 20 batches of 100 a second, several in flight at once
        await asyncio.gather(*tasks)

    try:
        await publisher.ensure_topics([TopicSpec(TOPIC, partitions=1)])
        await publisher.start()
        await load(2.0)
        assert failures == 0 and acknowledged
        stopping = asyncio.create_task(asyncio.to_thread(server.stop))
        await load(20.0)  # batches in flight when the broker dies, then publishes into the outage
        await stopping
        assert failures > 0
        await asyncio.to_thread(server.start)
        before = len(acknowledged)
        deadline = asyncio.get_running_loop().time() + 45
        while len(acknowledged) == before:
            assert asyncio.get_running_loop().time() < deadline, "no publish succeeded within 45 s of the restart"
            await load(1.0)
        failures_after_recovery = failures
        await load(3.0)
        assert failures == failures_after_recovery, "publishes failed again once one had succeeded"
        on_topic = {value for _, value in await read_topic(server.bootstrap, TOPIC)}
        assert set(acknowledged) <= on_topic
    finally:
        with contextlib.suppress(Exception):
            await publisher.stop()
        await asyncio.to_thread(server.stop)
