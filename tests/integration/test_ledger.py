"""The ledger on real Kafka and PostgreSQL: exactly once, verifiable, consistent checkpoints."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from sealtrail.infra.settings import Settings
from services.ledger.postgres.checkpoints import PostgresSigningKeys
from services.ledger.service import LedgerService
from services.ledger.signing import rotate
from tests.support.ledger import check_log, create_tenants, produce, sealed, wait_for_checkpoint


def ledger_settings(db_url: str, bootstrap: str, topic: str, key_dir: Path) -> Settings:
    return Settings(
        database_url=db_url, kafka_bootstrap=bootstrap, sealed_topic=topic, dlq_topic=f"{topic}.dlq",
        checkpoints_topic=f"{topic}.checkpoints", topic_partitions=3, signing_key_dir=key_dir,
        ledger_group=f"{topic}.ledger", checkpoint_interval_s=0.2,
    )


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[LedgerService]:
    service = LedgerService(settings, max_records=700)
    task = asyncio.create_task(service.run())
    try:
        for _ in range(200):
            if service.ready or task.done():
                break
            await asyncio.sleep(0.05)
        if task.done():
            task.result()
        yield service
    finally:
        service.stop()
        await asyncio.wait_for(task, timeout=30)


async def test_n_events_make_n_contiguous_verifiable_entries(
    fresh_db_url: str, kafka_bootstrap: str, topic_name: str, tmp_path: Path
) -> None:
    """N events in → exactly N entries per log, indices 0..N-1, roots and chains verify, and
    every pair of successive signed checkpoints is consistent."""
    await create_tenants(fresh_db_url, "acme", "beta")
    settings = ledger_settings(fresh_db_url, kafka_bootstrap, topic_name, tmp_path / "keys")
    async with running(settings):
        for _ in range(3):
            await produce(kafka_bootstrap, topic_name,
                          [sealed("acme") for _ in range(400)] + [sealed("beta") for _ in range(150)])
            await asyncio.sleep(0.3)
        await wait_for_checkpoint(fresh_db_url, {"acme": 1200, "beta": 450})
    assert await check_log(fresh_db_url, "acme") == 1200
    assert await check_log(fresh_db_url, "beta") == 450
    conn = await asyncpg.connect(fresh_db_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM checkpoints WHERE log_id = 'acme'") >= 2
        assert await conn.fetchval("SELECT count(*) FROM payloads") == 1650
    finally:
        await conn.close()


async def test_duplicates_make_no_second_entry(
    fresh_db_url: str, kafka_bootstrap: str, topic_name: str, tmp_path: Path
) -> None:
    """The same event id produced twice, and the same Kafka records replayed from offset 0,
    both leave exactly one entry per event."""
    await create_tenants(fresh_db_url, "acme")
    settings = ledger_settings(fresh_db_url, kafka_bootstrap, topic_name, tmp_path / "keys")
    records = [sealed("acme") for _ in range(300)]
    async with running(settings):
        await produce(kafka_bootstrap, topic_name, records)
        await produce(kafka_bootstrap, topic_name, records[:100])
        await wait_for_checkpoint(fresh_db_url, {"acme": 300})
    conn = await asyncpg.connect(fresh_db_url)
    try:
        await conn.execute("UPDATE consumer_offsets SET next_offset = 0")  # force a full replay
    finally:
        await conn.close()
    async with running(settings):
        await produce(kafka_bootstrap, topic_name, [*records[200:], sealed("acme")])
        await wait_for_checkpoint(fresh_db_url, {"acme": 301})
    assert await check_log(fresh_db_url, "acme") == 301


async def _dead_letters(bootstrap: str, topic: str, count: int) -> list[dict[str, object]]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await consumer.start()
    try:
        got: list[dict[str, object]] = []
        for _ in range(50):
            batch = await consumer.getmany(timeout_ms=200)
            got += [orjson.loads(r.value) for recs in batch.values() for r in recs]
            if len(got) >= count:
                break
        return got
    finally:
        await consumer.stop()


async def test_poison_records_go_to_the_dead_letter_topic(
    fresh_db_url: str, kafka_bootstrap: str, topic_name: str, tmp_path: Path
) -> None:
    """Unparseable records, records with a bad header and records of unknown tenants go to the
    dead-letter topic with a reason naming the field; the good records around them are logged."""
    from aiokafka import AIOKafkaProducer

    await create_tenants(fresh_db_url, "acme")
    settings = ledger_settings(fresh_db_url, kafka_bootstrap, topic_name, tmp_path / "keys")
    bad_header = sealed("acme")
    bad_header.header["occurred_at"] = "yesterday"
    async with running(settings):
        await produce(kafka_bootstrap, topic_name, [sealed("acme") for _ in range(10)])
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait(topic_name, b"{ not json", key=b"acme")
            await producer.send_and_wait(topic_name, b"\xff neither version", key=b"acme")
            await producer.send_and_wait(topic_name, bad_header.encode(), key=b"acme")
            await producer.send_and_wait(topic_name, sealed("nobody").encode(), key=b"nobody")
        finally:
            await producer.stop()
        await produce(kafka_bootstrap, topic_name, [sealed("acme") for _ in range(10)])
        await wait_for_checkpoint(fresh_db_url, {"acme": 20})
        letters = await _dead_letters(kafka_bootstrap, settings.dlq_topic, 4)
    assert await check_log(fresh_db_url, "acme") == 20
    reasons = sorted(str(x["reason"]) for x in letters)
    assert len(letters) == 4
    assert any("not valid JSON" in r for r in reasons)
    assert any("unsupported record version" in r for r in reasons)
    assert any("occurred_at" in r for r in reasons)
    assert "unknown tenant" in reasons
    for letter in letters:
        assert letter["source"]["topic"] == topic_name  # type: ignore[index]
        assert base64.b64decode(str(letter["value"]))  # the record itself is kept


async def test_rotation_keeps_old_checkpoints_verifiable(
    fresh_db_url: str, kafka_bootstrap: str, topic_name: str, tmp_path: Path
) -> None:
    """After a signing-key rotation, checkpoints of both keys verify under their own windows,
    and they stay consistent with each other."""
    await create_tenants(fresh_db_url, "acme")
    settings = ledger_settings(fresh_db_url, kafka_bootstrap, topic_name, tmp_path / "keys")
    async with running(settings):
        await produce(kafka_bootstrap, topic_name, [sealed("acme") for _ in range(50)])
        await wait_for_checkpoint(fresh_db_url, {"acme": 50})
        conn = await asyncpg.connect(fresh_db_url)
        try:
            await rotate(PostgresSigningKeys(conn), key_dir=settings.signing_key_dir)
        finally:
            await conn.close()
        await produce(kafka_bootstrap, topic_name, [sealed("acme") for _ in range(50)])
        await wait_for_checkpoint(fresh_db_url, {"acme": 100})
    conn = await asyncpg.connect(fresh_db_url)
    try:
        signers = await conn.fetch("SELECT DISTINCT substring(note from '— ([^ ]+) ') FROM checkpoints")
        assert await conn.fetchval("SELECT count(*) FROM signing_keys") == 4
    finally:
        await conn.close()
    assert signers
    assert await check_log(fresh_db_url, "acme") == 100


@pytest.mark.parametrize("size", [1, 2, 3, 7, 8, 9, 31, 64])
async def test_stored_tree_proofs_match_memory(fresh_db_url: str, size: int) -> None:
    """Proofs read from PostgreSQL equal proofs from the in-memory reference store."""
    from sealtrail.core.merkle import MemoryNodeStore, consistency_proof, inclusion_proof
    from services.ledger.ports import PartitionCommit
    from services.ledger.postgres import tree as tree_postgres
    from services.ledger.postgres.store import PostgresLedgerStore
    from services.ledger.sequencer import LogHead, sequence

    await create_tenants(fresh_db_url, "acme")
    pool = await asyncpg.create_pool(fresh_db_url)
    try:
        store = PostgresLedgerStore(pool=pool)
        head = LogHead.empty(log_id="acme", tenant_id="acme", origin="test/acme")
        mem = MemoryNodeStore()
        new, offset = [head], None
        for chunk in (size // 2, size - size // 2):
            if chunk == 0:
                continue
            batch = sequence(head, [sealed("acme") for _ in range(chunk)])
            await store.commit(PartitionCommit("g", "t", 0, offset, (offset or 0) + chunk, [batch], new))
            mem.add_runs(batch.runs)
            head, new, offset = batch.after, [], (offset or 0) + chunk
        async with pool.acquire() as conn:
            for i in range(size):
                got = await tree_postgres.inclusion_proof(conn, "acme", i, size)
                assert got == inclusion_proof(mem, i, size)
            for s1 in range(1, size + 1):
                got = await tree_postgres.consistency_proof(conn, "acme", s1, size)
                assert got == consistency_proof(mem, s1, size)
            assert await tree_postgres.root_at(conn, "acme", size) == head.compact.root()
    finally:
        await pool.close()
