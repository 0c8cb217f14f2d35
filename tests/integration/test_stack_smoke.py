"""The stack is real: asyncpg and aiokafka round-trip through the servers this run started."""

from __future__ import annotations

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

OFFSETS_DDL = """
CREATE TABLE IF NOT EXISTS smoke_offsets (
    topic text NOT NULL, part int NOT NULL, next_offset bigint NOT NULL, PRIMARY KEY (topic, part))
"""


async def test_asyncpg_round_trip(fresh_db_url: str) -> None:
    """A value written through asyncpg comes back unchanged from the real server."""
    conn = await asyncpg.connect(fresh_db_url)
    try:
        version = await conn.fetchval("SHOW server_version")
        await conn.execute("CREATE TABLE t (id int PRIMARY KEY, b bytea)")
        await conn.execute("INSERT INTO t VALUES ($1, $2)", 1, b"\x00\xffsealtrail")
        assert await conn.fetchval("SELECT b FROM t WHERE id = 1") == b"\x00\xffsealtrail"
        assert int(version.split(".")[0]) >= 13
    finally:
        await conn.close()


async def _create_topic(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()


async def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all")
    await producer.start()
    try:
        for v in values:
            await producer.send_and_wait(topic, v, key=b"log-1")
    finally:
        await producer.stop()


async def _consume_some(bootstrap: str, topic: str, db_url: str, limit: int) -> list[bytes]:
    """Consume up to ``limit`` records, storing the next offset in PostgreSQL in one transaction."""
    tp = TopicPartition(topic, 0)
    conn = await asyncpg.connect(db_url)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    got: list[bytes] = []
    try:
        await conn.execute(OFFSETS_DDL)
        consumer.assign([tp])
        stored = await conn.fetchval(
            "SELECT next_offset FROM smoke_offsets WHERE topic = $1 AND part = 0", topic)
        if stored is not None:
            consumer.seek(tp, stored)
        while len(got) < limit:
            batch = await consumer.getmany(tp, timeout_ms=5000, max_records=limit - len(got))
            records = batch.get(tp, [])
            assert records, "the broker returned nothing within 5 s"
            async with conn.transaction():
                await conn.execute("CREATE TABLE IF NOT EXISTS smoke_rows (v bytea)")
                await conn.executemany("INSERT INTO smoke_rows VALUES ($1)", [(r.value,) for r in records])
                await conn.execute(
                    "INSERT INTO smoke_offsets VALUES ($1, 0, $2) ON CONFLICT (topic, part) "
                    "DO UPDATE SET next_offset = excluded.next_offset", topic, records[-1].offset + 1)
            got += [r.value for r in records if r.value is not None]
    finally:
        await consumer.stop()
        await conn.close()
    return got


async def test_kafka_round_trip_with_offsets_in_postgres(
    kafka_bootstrap: str, fresh_db_url: str, topic_name: str
) -> None:
    """An idempotent acks=all producer's records reach a manual-offset consumer exactly once,
    and a restarted consumer resumes from the offset stored in PostgreSQL."""
    await _create_topic(kafka_bootstrap, topic_name)
    values = [f"message-{i}".encode() for i in range(10)]
    await _produce(kafka_bootstrap, topic_name, values)

    first = await _consume_some(kafka_bootstrap, topic_name, fresh_db_url, limit=4)
    second = await _consume_some(kafka_bootstrap, topic_name, fresh_db_url, limit=6)

    assert first == values[:4]
    assert second == values[4:]
    conn = await asyncpg.connect(fresh_db_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM smoke_rows") == 10
        assert await conn.fetchval("SELECT next_offset FROM smoke_offsets") == 10
    finally:
        await conn.close()
