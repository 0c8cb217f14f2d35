"""Helpers for ingest tests: a running ingest (in-process or on a real port), keys, the topic's records."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import uvicorn
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from fastapi import FastAPI
from pydantic import SecretStr

from sealtrail.core.note import Ed25519Signer, Ed25519Verifier
from sealtrail.core.record import SealedRecord, decode_record
from sealtrail.core.sealing import Kek
from sealtrail.infra.apikeys import KeyAdmin
from sealtrail.infra.auth import Role
from sealtrail.infra.auth_postgres import PostgresAuthStore
from sealtrail.infra.bus import BusPublisher, TopicSpec
from sealtrail.infra.kek import IndexKeyWrapper
from sealtrail.infra.postgres import migrate_url
from sealtrail.infra.settings import Settings
from sealtrail.sdk import tool_call
from services.ingest import IngestOptions, IngestParts, create_app


@dataclass
class Ingest:
    """A configured ingest: settings, the app, tokens by ``"tenant:role"`` and the receipt verifier."""

    settings: Settings
    app: FastAPI
    tokens: dict[str, str]
    key_ids: dict[str, str]
    verifier: Ed25519Verifier
    kek: Kek
    url: str = "http://ingest"
    client: httpx.AsyncClient = field(init=False)

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}


async def provision(db_url: str, tenants: Sequence[str], roles: Sequence[Role], kek: Kek) -> tuple[
        dict[str, str], dict[str, str]]:
    """Tenants and one key per (tenant, role), made through the admin API; returns tokens and key ids."""
    await migrate_url(db_url)
    pool = await asyncpg.create_pool(db_url, min_size=1, max_size=2)
    assert pool is not None
    tokens: dict[str, str] = {}
    key_ids: dict[str, str] = {}
    try:
        admin = KeyAdmin(store=PostgresAuthStore(pool=pool))
        for tenant in tenants:
            await admin.create_tenant(tenant, kek=IndexKeyWrapper(kek=kek, tenant=tenant))
            for role in roles:
                issued = await admin.create_key(tenant=tenant, role=role, label=f"{role.value}-1")
                tokens[f"{tenant}:{role.value}"] = issued.token
                key_ids[f"{tenant}:{role.value}"] = issued.key.key_id
    finally:
        await pool.close()
    return tokens, key_ids


def settings_for(db_url: str, bootstrap: str, topic: str, kek: Kek | None = None,
                 kek_hex: str | None = None) -> Settings:
    return Settings(database_url=SecretStr(db_url), kafka_bootstrap=bootstrap, sealed_topic=topic,
                    topic_partitions=2, kek=SecretStr(kek_hex or os.urandom(32).hex()))


async def make_ingest(
    db_url: str, bootstrap: str, topic: str, *, tenants: Sequence[str] = ("acme",),
    roles: Sequence[Role] = (Role.GATEWAY,), options: IngestOptions | None = None,
    publisher: BusPublisher | None = None,
) -> Ingest:
    kek_hex = os.urandom(32).hex()
    kek = Kek(bytes.fromhex(kek_hex))
    tokens, key_ids = await provision(db_url, tenants, roles, kek)
    signer = Ed25519Signer.generate("test-ingest")
    settings = settings_for(db_url, bootstrap, topic, kek_hex=kek_hex)
    opts = options or IngestOptions(publish_timeout_s=3.0, auth_cache_ttl_s=0.0)
    app = create_app(settings, options=opts, parts=IngestParts(signer=signer, publisher=publisher))
    return Ingest(settings, app, tokens, key_ids, signer.verifier(), kek)


@contextlib.asynccontextmanager
async def in_process(ingest: Ingest) -> AsyncIterator[httpx.AsyncClient]:
    """The app's lifespan running, and an httpx client calling it in-process."""
    async with ingest.app.router.lifespan_context(ingest.app), httpx.AsyncClient(
        transport=httpx.ASGITransport(app=ingest.app), base_url=ingest.url
    ) as client:
        ingest.client = client
        yield client


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def on_port(ingest: Ingest) -> AsyncIterator[str]:
    """The app served by a real uvicorn server on a free 127.0.0.1 port; yields its URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(ingest.app, host="127.0.0.1", port=port, log_config=None,
                                           access_log=False, lifespan="on"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.05)
    ingest.url = f"http://127.0.0.1:{port}"
    try:
        yield ingest.url
    finally:
        server.should_exit = True
        await task


def event(**overrides: Any) -> dict[str, Any]:
    """A valid tool_call with a payload and a subject; overrides replace or add raw fields."""
    built = tool_call(
        agent_id="agent-7", server_id="srv-db", tool_name="db.query", decision="allow", status="ok",
        payload={"args": {"q": "select 1"}}, subjects=["user:alice@example.com"],
    )
    built.update(overrides)
    return {k: v for k, v in built.items() if v != []}


async def read_topic(bootstrap: str, topic: str, *, timeout_s: float = 10.0) -> list[tuple[bytes, bytes]]:
    """Every (key, value) on the topic, from the beginning to the current end of each partition."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p["partition"]) for p in described["partitions"]]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: list[tuple[bytes, bytes]] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while any([await consumer.position(tp) < ends[tp] for tp in tps]):
            assert loop.time() < deadline, "the topic was not read to its end in time"
            batches = await consumer.getmany(*tps, timeout_ms=500)
            out += [(r.key or b"", r.value or b"") for records in batches.values() for r in records]
        return out
    finally:
        await consumer.stop()


class GatedPublisher:
    """The real Kafka publisher, held at a gate: lets a test keep a batch in flight."""

    def __init__(self, inner: BusPublisher) -> None:
        self.inner = inner
        self.gate = asyncio.Event()
        self.gate.set()
        self.entered = asyncio.Event()

    async def start(self) -> None:
        await self.inner.start()

    async def stop(self) -> None:
        await self.inner.stop()

    async def ensure_topics(self, specs: Sequence[TopicSpec]) -> None:
        await self.inner.ensure_topics(specs)

    async def publish(self, topic: str, records: Sequence[tuple[bytes, bytes]]) -> None:
        self.entered.set()
        await self.gate.wait()
        await self.inner.publish(topic, records)


async def records_on(bootstrap: str, topic: str) -> list[SealedRecord]:
    return [decode_record(value) for _, value in await read_topic(bootstrap, topic)]
