"""The projector rides out a PostgreSQL outage: it keeps running with /readyz 503 and resumes by
itself, whether the server goes away while it projects or is not there yet when it starts."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import asyncpg
import httpx
import pytest

from sealtrail.devstack import PostgresServer
from sealtrail.infra.postgres import migrate_url
from sealtrail.infra.settings import Settings
from services.ledger.ports import PartitionCommit
from services.ledger.postgres.store import PostgresLedgerStore
from services.ledger.sequencer import LogHead, sequence
from services.projector.service import ProjectorService, health_app
from tests.support.ledger import create_tenants, sealed
from tests.support.servers import remove_datadir, server_datadir

pytestmark = pytest.mark.services


async def _until(check: Callable[[], Awaitable[bool]], what: str, within_s: float = 60) -> None:
    for _ in range(int(within_s / 0.1)):
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"not within {within_s:.0f} s: {what}")


async def _append(url: str, n: int) -> None:
    """Append ``n`` tool calls to the log 'acme' exactly as the ledger commits them."""
    pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
    try:
        store = PostgresLedgerStore(pool=pool)
        heads = await store.load_heads(["acme"])
        head = heads.get("acme") or LogHead.empty(log_id="acme", tenant_id="acme", origin="test/acme")
        offset = (await store.load_offsets(group="direct", topic="direct", partitions=[0])).get(0)
        batch = sequence(head, [sealed("acme") for _ in range(n)])
        await store.commit(PartitionCommit("direct", "direct", 0, offset, (offset or 0) + n, [batch],
                                           [] if "acme" in heads else [head]))
    finally:
        await pool.close()


async def _projected(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("SELECT coalesce(sum(next_idx), 0) FROM projector_progress"))
    finally:
        await conn.close()


async def test_projector_survives_postgres_going_away_and_starting_late() -> None:
    """Started while PostgreSQL is down: running, 503. Server up: ready, projects. Server stopped:
    still running, 503. Server back: ready again and projects what arrived meanwhile."""
    pg = PostgresServer(datadir=server_datadir("projector-outage"))
    try:
        await asyncio.to_thread(pg.start)
        await migrate_url(pg.url)
        await create_tenants(pg.url, "acme")
        await _append(pg.url, 50)
        await asyncio.to_thread(pg.stop)
        service = ProjectorService(Settings(database_url=pg.url), poll_interval_s=0.1)
        app, status = health_app(service)
        failed = asyncio.Event()
        status.terminate = failed.set  # never SIGTERM the test process
        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://projector") as client:
            async def ready(code: int) -> bool:
                return (await client.get("/readyz")).status_code == code

            await asyncio.sleep(3)
            assert await ready(503) and not failed.is_set(), "a projector started without its database must wait"
            await asyncio.to_thread(pg.start)
            await _until(lambda: ready(200), "/readyz 200 once PostgreSQL is up")
            await _until(lambda: _count_is(pg.url, 50), "the 50 entries projected")

            await asyncio.to_thread(pg.stop)
            await _until(lambda: ready(503), "/readyz 503 while PostgreSQL is down", within_s=20)
            await asyncio.sleep(3)
            assert await ready(503) and not failed.is_set(), "the projector exited during the outage"

            await asyncio.to_thread(pg.start)
            await _append(pg.url, 30)
            await _until(lambda: ready(200), "/readyz 200 again once PostgreSQL is back")
            await _until(lambda: _count_is(pg.url, 80), "the entries of the outage projected")
            assert not failed.is_set()
    finally:
        await asyncio.to_thread(pg.stop)
        remove_datadir(pg.datadir)


async def _count_is(url: str, n: int) -> bool:
    return await _projected(url) == n
