"""The ledger's /readyz follows its dependencies: 503 with the reason while PostgreSQL is down."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from sealtrail.devstack import PostgresServer
from sealtrail.infra.settings import Settings
from services.ledger.service import LedgerService, health_app
from tests.support.servers import remove_datadir, server_datadir

pytestmark = pytest.mark.services


async def _until(check: Callable[[], Awaitable[bool]], what: str, within_s: float = 60) -> None:
    for _ in range(int(within_s / 0.1)):
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"not within {within_s:.0f} s: {what}")


async def test_readyz_is_503_naming_the_database_while_postgres_is_down(
        kafka_bootstrap: str, topic_name: str, tmp_path: Path) -> None:
    """Ready (200, partitions positioned, database and Kafka true) once consuming; 503 with
    ``database: false``, no positioned partition and the reason while its PostgreSQL is stopped;
    ready again, without a restart, once the server is back."""
    pg = PostgresServer(datadir=server_datadir("ledger-readiness"))
    try:
        await asyncio.to_thread(pg.start)
        settings = Settings(
            database_url=pg.url, kafka_bootstrap=kafka_bootstrap, sealed_topic=topic_name,
            dlq_topic=f"{topic_name}.dlq", checkpoints_topic=f"{topic_name}.checkpoints", topic_partitions=2,
            signing_key_dir=tmp_path / "keys", ledger_group=f"{topic_name}.ledger", checkpoint_interval_s=0.2)
        app, status = health_app(LedgerService(settings, max_records=100))
        failed = asyncio.Event()
        status.terminate = failed.set  # never SIGTERM the test process
        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://ledger") as client:
            last: list[httpx.Response] = []

            async def readyz(code: int) -> bool:
                last[:] = [await client.get("/readyz")]
                return last[0].status_code == code

            await _until(lambda: readyz(200), "/readyz 200 once the partitions are positioned")
            assert last[0].json() == {"ready": True, "partitions": [0, 1], "unpositioned": [],
                                      "database": True, "kafka": True}

            await asyncio.to_thread(pg.stop)
            await _until(lambda: readyz(503), "/readyz 503 while PostgreSQL is down", within_s=20)
            body = last[0].json()
            assert body["ready"] is False and body["database"] is False
            assert "PostgreSQL unavailable" in body["reason"]
            await asyncio.sleep(2)  # it stays not ready, and running, while the server is down
            assert (await client.get("/readyz")).status_code == 503 and not failed.is_set()

            await asyncio.to_thread(pg.start)
            await _until(lambda: readyz(200), "/readyz 200 again once PostgreSQL is back")
            assert last[0].json()["partitions"] == [0, 1] and "reason" not in last[0].json()
            assert not failed.is_set()
    finally:
        await asyncio.to_thread(pg.stop)
        remove_datadir(pg.datadir)


async def test_readyz_before_the_ledger_runs_says_why() -> None:
    """A ledger that has not started (or has stopped) is not ready: no partition, no database."""
    service = LedgerService(Settings(database_url="postgresql://unused@127.0.0.1:1/x"))
    ready, body = service.readiness()
    assert not ready
    assert body == {"partitions": [], "unpositioned": [], "database": False, "kafka": False,
                    "reason": "not running; PostgreSQL unavailable (not checked yet)"}
