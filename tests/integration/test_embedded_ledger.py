"""The ledger on its embedded pair (local log + SQLite): prompt wake-ups, restarts from the stored
offsets, dead letters, and a refusal to run over a log that lost consumed records."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import orjson
import pytest

from sealtrail.core.record import SealedRecord
from sealtrail.errors import CorruptLogError
from sealtrail.infra.sqlite import SqliteDatabase, open_database
from tests.support.embedded import DLQ, TOPIC, EmbeddedLedger, add_tenants, check_log, embedded_ledger
from tests.support.ledger import sealed


async def _publish(ledger: EmbeddedLedger, records: list[SealedRecord]) -> None:
    await ledger.log.publish(TOPIC, [(r.log.encode(), r.encode()) for r in records])


async def _sizes(db: SqliteDatabase) -> dict[str, int]:
    return dict(await db.read(lambda c: c.execute("SELECT log_id, size FROM logs").fetchall()))


async def _until(db: SqliteDatabase, sizes: dict[str, int], within_s: float = 10) -> float:
    started = time.monotonic()
    while (got := await _sizes(db)) != sizes:
        assert time.monotonic() - started < within_s, f"logs reached {got}, expected {sizes}"
        await asyncio.sleep(0.01)
    return time.monotonic() - started


@pytest.fixture
async def root(tmp_path: Path) -> Path:
    db = await open_database(tmp_path / "sealtrail.db")
    await add_tenants(db, "acme", "beta")
    await db.close()
    return tmp_path


async def test_a_published_record_is_logged_without_waiting_for_a_poll(root: Path) -> None:
    """With a 30 s polling fallback, a published record is still committed within a second."""
    async with embedded_ledger(root, poll_interval_s=30) as ledger:
        await asyncio.sleep(0.2)  # the driver is idle, waiting
        await _publish(ledger, [sealed("acme")])
        assert await _until(ledger.db, {"acme": 1}) < 1.0


async def test_restarts_resume_at_the_stored_offsets(root: Path) -> None:
    """Across restarts nothing is logged twice; records of unknown tenants and malformed records
    go to the dead-letter topic with their reason; the log verifies."""
    first = [sealed("acme") for _ in range(120)] + [sealed("beta") for _ in range(30)]
    async with embedded_ledger(root, max_records=50) as ledger:
        await _publish(ledger, first)
        await _until(ledger.db, {"acme": 120, "beta": 30})
    bad = sealed("acme")
    bad.header["latency_ms"] = -1
    async with embedded_ledger(root, max_records=50) as ledger:
        await _publish(ledger, [*first[:10], sealed("nobody"), bad, sealed("acme")])
        await _until(ledger.db, {"acme": 121, "beta": 30})
        letters = await ledger.log.read(DLQ, 0, 0)
        await asyncio.sleep(0.5)  # a checkpoint round at the final size
    reasons = sorted(orjson.loads(r.value or b"{}")["reason"] for r in letters)
    assert reasons == ["invalid record: latency_ms must be a non-negative number", "unknown tenant"]
    assert check_log(root / "sealtrail.db", "acme") == 121
    assert check_log(root / "sealtrail.db", "beta") == 30


async def test_a_stored_offset_past_the_log_end_stops_the_driver(root: Path) -> None:
    """If the database says more was consumed than the local log holds, the driver refuses to run
    rather than skip records that are published next."""
    async with embedded_ledger(root) as ledger:
        await _publish(ledger, [sealed("acme")])
        await _until(ledger.db, {"acme": 1})
        await ledger.db.write(lambda c: c.execute("UPDATE consumer_offsets SET next_offset = 1000"))
    with pytest.raises(CorruptLogError):
        async with embedded_ledger(root):
            await asyncio.sleep(1)
