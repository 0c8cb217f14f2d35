"""Helpers for ledger tests: sealed records, producing them, waiting for and checking the log."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime

import asyncpg
from aiokafka import AIOKafkaProducer

from sealtrail.core.checkpoint import Checkpoint
from sealtrail.core.merkle import verify_consistency
from sealtrail.core.record import SealedRecord
from sealtrail.core.verify import TrustedKey, TrustedKeys, verify_run
from sealtrail.infra.bus import TopicSpec
from services.ledger.ports import LedgerStore, PartitionCommit
from services.ledger.postgres import tree as tree_postgres
from services.ledger.sequencer import LogHead


def uuid7() -> str:
    """A UUIDv7 string (time-ordered), as gateways send."""
    ms = int(time.time() * 1000)
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms << 80) | (0x7 << 76) | ((rand >> 62) & 0xFFF) << 64 | (0b10 << 62) | (rand & (2**62 - 1))
    return str(uuid.UUID(int=value))


def sealed(tenant: str, *, tool: str = "db.query", ciphertext_size: int = 64) -> SealedRecord:
    """A plausible sealed record of a tool call (random ciphertext: the ledger never opens it)."""
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    header = {
        "event_id": uuid7(), "type": "tool_call", "schema": "sealtrail.tool_call/v1",
        "occurred_at": now, "received_at": now, "tenant": tenant, "gateway_id": "gw-test",
        "agent_id": "agent-7", "session_id": "s-1", "server_id": "srv-db", "tool_name": tool,
        "tool_tier": "read", "decision": "allow", "status": "ok", "latency_ms": 12,
        "key_ids": ["pk_test"], "payload_digest": "blake3:" + os.urandom(32).hex(), "payload_size": 100,
    }
    return SealedRecord(tenant, header, os.urandom(24), os.urandom(ciphertext_size))


async def create_tenants(db_url: str, *tenants: str) -> None:
    """Tenant rows (with a placeholder wrapped index key; the ledger never uses it)."""
    conn = await asyncpg.connect(db_url)
    try:
        from sealtrail.infra.postgres import migrate

        await migrate(conn)
        await conn.executemany(
            "INSERT INTO tenants (tenant_id, index_key, index_key_kek) VALUES ($1, $2, 'test')"
            " ON CONFLICT DO NOTHING", [(t, os.urandom(72)) for t in tenants])
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def tenant_pool(db_url: str, *tenants: str) -> AsyncIterator[asyncpg.Pool]:
    """A small pool on ``db_url``, migrated and holding ``tenants``."""
    await create_tenants(db_url, *tenants)
    pool = await asyncpg.create_pool(db_url, min_size=1, max_size=4)
    try:
        yield pool
    finally:
        await pool.close()


class DelegatingStore:
    """A :class:`~services.ledger.ports.LedgerStore` that passes every call to a real one; tests
    subclass it to watch or hold some of them."""

    def __init__(self, inner: LedgerStore) -> None:
        self._inner = inner

    async def load_offsets(self, *, group: str, topic: str, partitions: Sequence[int]) -> dict[int, int]:
        return await self._inner.load_offsets(group=group, topic=topic, partitions=partitions)

    async def durable_offsets(self, *, group: str, topic: str, partitions: Sequence[int]) -> dict[int, int]:
        return await self._inner.durable_offsets(group=group, topic=topic, partitions=partitions)

    async def load_heads(self, log_ids: Sequence[str]) -> dict[str, LogHead]:
        return await self._inner.load_heads(log_ids)

    async def tenants_exist(self, tenant_ids: Sequence[str]) -> set[str]:
        return await self._inner.tenants_exist(tenant_ids)

    async def existing_event_ids(self, log_id: str, event_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, int]:
        return await self._inner.existing_event_ids(log_id, event_ids)

    async def commit(self, work: PartitionCommit) -> None:
        await self._inner.commit(work)


class NoDeadLetters:
    """A bus publisher for a ledger worker's dead letters in tests that expect none."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def publish(self, topic: str, records: Sequence[tuple[bytes, bytes]]) -> None:
        raise AssertionError("no dead letter expected")

    async def ensure_topics(self, specs: Sequence[TopicSpec]) -> None: ...


async def produce(bootstrap: str, topic: str, records: Sequence[SealedRecord]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True,
                                linger_ms=5)
    await producer.start()
    try:
        futures = [await producer.send(topic, r.encode(), key=r.log.encode()) for r in records]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def wait_for_checkpoint(db_url: str, expected: dict[str, int], *, within_s: float = 60) -> None:
    """Wait until every log has a signed checkpoint at exactly its expected size."""
    conn = await asyncpg.connect(db_url)
    try:
        deadline = time.monotonic() + within_s
        got: dict[str, int] = {}
        while time.monotonic() < deadline:
            rows = await conn.fetch("SELECT log_id, max(tree_size) AS s FROM checkpoints GROUP BY log_id")
            got = {r["log_id"]: r["s"] for r in rows}
            if all(got.get(k, 0) >= v for k, v in expected.items()):
                return
            await asyncio.sleep(0.2)
        raise AssertionError(f"checkpoints reached {got}, expected {expected}")
    finally:
        await conn.close()


async def trusted_keys(conn: asyncpg.Connection) -> TrustedKeys:
    rows = await conn.fetch("SELECT vkey, not_before, not_after FROM signing_keys"
                            " WHERE purpose IN ('checkpoint', 'cosign')")
    return TrustedKeys(
        TrustedKey.from_vkey(r["vkey"], not_before=int(r["not_before"].timestamp()),
                             not_after=int(r["not_after"].timestamp()) + 1 if r["not_after"] else None)
        for r in rows
    )


async def check_log(db_url: str, log_id: str) -> int:
    """Verify one stored log end to end with the log-core verifier; return its size.

    Indices contiguous from 0, chains and roots recomputed, every checkpoint signed by a published
    key, and every pair of successive checkpoints consistent (proof from the stored tree).
    """
    conn = await asyncpg.connect(db_url)
    try:
        keys = await trusted_keys(conn)
        origin = await conn.fetchval("SELECT origin FROM logs WHERE log_id = $1", log_id)
        notes = await conn.fetch(
            "SELECT tree_size, note FROM checkpoints WHERE log_id = $1 ORDER BY tree_size", log_id)
        cps: list[Checkpoint] = [keys.verify_checkpoint(r["note"], origin=origin).checkpoint for r in notes]
        for a, b in itertools.pairwise(cps):
            proof = await tree_postgres.consistency_proof(conn, log_id, a.size, b.size)
            verify_consistency(a.size, b.size, proof, a.root, b.root)
        rows = await conn.fetch(
            "SELECT idx, entry, chain FROM entries WHERE log_id = $1 ORDER BY idx", log_id)
        result = verify_run([r["entry"] for r in rows], [r["chain"] for r in rows], cps, origin=origin,
                            indices=[r["idx"] for r in rows])
        assert result.entries == len(rows)
        return len(rows)
    finally:
        await conn.close()
