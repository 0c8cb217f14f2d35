"""A whole Sealtrail in-process for query tests: ingest, ledger, projector and the query API on
real Kafka and PostgreSQL, with tenants and one API key per (tenant, role).

Events go in through the real ingest app (validated, sealed with real keys, published to Kafka),
the real ledger sequences them and signs checkpoints, the real projector fills the subject
index, and the query app answers over httpx in-process (or on a real port for the CLI).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import uvicorn
from fastapi import FastAPI
from pydantic import SecretStr

from sealtrail.core.note import Ed25519Signer
from sealtrail.core.sealing import Kek
from sealtrail.infra.apikeys import KeyAdmin
from sealtrail.infra.auth import Role
from sealtrail.infra.auth_postgres import PostgresAuthStore
from sealtrail.infra.kek import IndexKeyWrapper
from sealtrail.infra.postgres import migrate_url
from sealtrail.infra.settings import Settings
from sealtrail.sdk import tool_call
from services.ingest import IngestOptions, IngestParts
from services.ingest import create_app as create_ingest
from services.ledger.service import LedgerService
from services.projector.postgres import PostgresProjectorStore
from services.projector.projector import Projector
from services.query.app import create_app as create_query
from services.query.config import QueryOptions
from services.query.service import QueryParts

TENANTS = ("acme", "beta")
ROLES = tuple(Role)


async def provision(db_url: str, tenants: Sequence[str], kek: Kek) -> tuple[dict[str, str], dict[str, str]]:
    """Tenants and one key per (tenant, role); returns tokens and key ids by ``"tenant:role"``."""
    await migrate_url(db_url)
    pool = await asyncpg.create_pool(db_url, min_size=1, max_size=2)
    assert pool is not None
    tokens: dict[str, str] = {}
    key_ids: dict[str, str] = {}
    try:
        admin = KeyAdmin(store=PostgresAuthStore(pool=pool))
        for tenant in tenants:
            await admin.create_tenant(tenant, kek=IndexKeyWrapper(kek=kek, tenant=tenant))
            for role in ROLES:
                issued = await admin.create_key(tenant=tenant, role=role, label=f"{role.value}-1")
                tokens[f"{tenant}:{role.value}"] = issued.token
                key_ids[f"{tenant}:{role.value}"] = issued.key.key_id
    finally:
        await pool.close()
    return tokens, key_ids


def call(**fields: Any) -> dict[str, Any]:
    """A valid tool_call with a payload; ``fields`` override the defaults."""
    base: dict[str, Any] = {"agent_id": "agent-7", "server_id": "srv-db", "tool_name": "db.query",
                            "decision": "allow", "status": "ok", "session_id": "s-1", "tool_tier": "read",
                            "latency_ms": 12, "payload": {"args": {"q": "select 1"}}}
    base.update(fields)
    return tool_call(**base)


@dataclass
class QueryStack:
    """The running services and what tests need to drive them."""

    db_url: str
    settings: Settings
    kek: Kek
    tokens: dict[str, str]
    key_ids: dict[str, str]
    signer: Ed25519Signer
    query_app: FastAPI
    ingest_app: FastAPI
    pool: asyncpg.Pool
    api: httpx.AsyncClient = field(init=False)
    gateway: httpx.AsyncClient = field(init=False)
    projector: Projector = field(init=False)

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    async def send(self, tenant: str, events: Sequence[dict[str, Any]]) -> list[str]:
        """Submit through ingest in batches of 1000; return the accepted event ids."""
        ids: list[str] = []
        for pos in range(0, len(events), 1000):
            resp = await self.gateway.post("/v1/events", json={"events": list(events[pos:pos + 1000])},
                                           headers=self.auth(f"{tenant}:gateway"))
            assert resp.status_code == 202, resp.text
            ids += [a["event_id"] for a in resp.json()["accepted"]]
        return ids

    async def log_size(self, tenant: str) -> int:
        return int(await self.pool.fetchval("SELECT coalesce(max(size), 0) FROM logs WHERE log_id = $1",
                                            tenant) or 0)

    async def accesses_since(self, tenant: str, size: int, target: str, *, watch_s: float = 2.0) -> list[int]:
        """Indexes at or after ``size`` of ``tenant``'s log holding an access event whose target
        is ``target``, watched for ``watch_s`` so that an append the request set off has time to
        land. Entries that other tests append meanwhile are not counted."""
        deadline = time.monotonic() + watch_s
        while True:
            rows = await self.pool.fetch("SELECT idx, entry FROM entries WHERE log_id = $1 AND idx >= $2",
                                         tenant, size)
            found = [r["idx"] for r in rows
                     if orjson.loads(r["entry"]).get("target_event_id") == target]
            if found or time.monotonic() >= deadline:
                return found
            await asyncio.sleep(0.1)

    async def settle(self, sizes: dict[str, int], *, within_s: float = 60) -> None:
        """Wait until each log holds at least ``sizes`` entries under a signed checkpoint of its
        whole size, then project everything."""
        deadline = time.monotonic() + within_s
        while True:
            rows = await self.pool.fetch(
                "SELECT l.log_id, l.size, (SELECT max(tree_size) FROM checkpoints c WHERE c.log_id = l.log_id)"
                " AS signed FROM logs l")
            got = {r["log_id"]: (r["size"], r["signed"] or 0) for r in rows}
            if all(got.get(t, (0, 0))[0] >= n and got[t][1] == got[t][0] for t, n in sizes.items()):
                break
            assert time.monotonic() < deadline, f"logs reached {got}, expected {sizes}"
            await asyncio.sleep(0.1)
        await self.projector.catch_up()


    async def logged(self, tenant: str, event_ids: Sequence[str], *, within_s: float = 60) -> None:
        """Wait until every event id is in ``tenant``'s log under a signed checkpoint; project."""
        deadline = time.monotonic() + within_s
        wanted = [uuid.UUID(e) for e in event_ids]
        while True:
            top = await self.pool.fetchval(
                "SELECT max(idx) FROM entries WHERE log_id = $1 AND event_id = ANY($2::uuid[])"
                " HAVING count(*) = $3", tenant, wanted, len(wanted))
            if top is not None:
                break
            assert time.monotonic() < deadline, f"events {event_ids} did not reach the log"
            await asyncio.sleep(0.1)
        await self.settle({tenant: top + 1}, within_s=within_s)


def stack_settings(db_url: str, bootstrap: str, topic: str, key_dir: Path, kek_hex: str) -> Settings:
    return Settings(
        database_url=SecretStr(db_url), kafka_bootstrap=bootstrap, sealed_topic=topic,
        dlq_topic=f"{topic}.dlq", checkpoints_topic=f"{topic}.checkpoints", topic_partitions=2,
        signing_key_dir=key_dir, ledger_group=f"{topic}.ledger", checkpoint_interval_s=0.2,
        kek=SecretStr(kek_hex),
    )


@contextlib.asynccontextmanager
async def _ledger(settings: Settings) -> AsyncIterator[LedgerService]:
    service = LedgerService(settings, max_records=2000)
    task = asyncio.create_task(service.run())
    try:
        for _ in range(400):
            if service.ready or task.done():
                break
            await asyncio.sleep(0.05)
        if task.done():
            task.result()
        yield service
    finally:
        service.stop()
        await asyncio.wait_for(task, timeout=30)


@contextlib.asynccontextmanager
async def _serving(app: FastAPI, base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=base_url, timeout=60) as client:
        yield client


@contextlib.asynccontextmanager
async def query_stack(db_url: str, bootstrap: str, key_dir: Path, *, tenants: Sequence[str] = TENANTS,
                      options: QueryOptions | None = None) -> AsyncIterator[QueryStack]:
    """Provision ``tenants`` and run ingest, ledger, projector and the query API until exit."""
    kek_hex = os.urandom(32).hex()
    kek = Kek(bytes.fromhex(kek_hex))
    tokens, key_ids = await provision(db_url, tenants, kek)
    topic = f"query.{uuid.uuid4().hex[:12]}"
    settings = stack_settings(db_url, bootstrap, topic, key_dir, kek_hex)
    signer = Ed25519Signer.generate("test-query")
    query_app = create_query(settings, options=options or QueryOptions(auth_cache_ttl_s=0, shred_interval_s=0,
                                                                       publish_timeout_s=5),
                             parts=QueryParts(signer=signer))
    ingest_app = create_ingest(settings, options=IngestOptions(auth_cache_ttl_s=0, publish_timeout_s=5),
                               parts=IngestParts(signer=Ed25519Signer.generate("test-ingest")))
    pool = await asyncpg.create_pool(db_url, min_size=1, max_size=4)
    assert pool is not None
    stack = QueryStack(db_url, settings, kek, tokens, key_ids, signer, query_app, ingest_app, pool)
    stack.projector = Projector(store=PostgresProjectorStore(pool=pool))
    try:
        async with _ledger(settings), _serving(ingest_app, "http://ingest") as gw, \
                _serving(query_app, "http://query") as api:
            stack.gateway, stack.api = gw, api
            yield stack
    finally:
        await pool.close()


@contextlib.asynccontextmanager
async def on_port(app: FastAPI) -> AsyncIterator[str]:
    """Serve an app whose lifespan already runs on a real 127.0.0.1 port; yields its URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None,
                                           access_log=False, lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def new_database(pg_url: str) -> str:
    """A new empty database on the test server; returns its URL."""
    name = f"q_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(pg_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base, _, _ = pg_url.rpartition("/")
    return f"{base}/{name}"


async def drop_database(pg_url: str, db_url: str) -> None:
    admin = await asyncpg.connect(pg_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{db_url.rpartition("/")[2]}" WITH (FORCE)')
    finally:
        await admin.close()


def cli_env(url: str, token: str) -> dict[str, str]:
    """Environment for a ``sealtrail`` subprocess talking to the query API at ``url``."""
    return {**os.environ, "SEALTRAIL_TOKEN": token, "SEALTRAIL_QUERY_URL": url}
