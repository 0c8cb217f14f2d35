"""The ledger's durable offsets survive a kill -9 of PostgreSQL although its commits do not wait
for the WAL flush: Kafka's records below them may be deleted (services/ledger/trimming.py)."""

from __future__ import annotations

import asyncio

import pytest

from sealtrail.devstack import PostgresServer
from sealtrail.errors import ServiceStartError
from sealtrail.infra.postgres import create_pool, migrate_url
from services.ledger.ports import PartitionCommit
from services.ledger.postgres.store import PostgresLedgerStore
from tests.support.servers import remove_datadir, server_datadir

pytestmark = pytest.mark.services

# The WAL writer as lazy as it can be, and no background writer or autovacuum flushing WAL for
# the commits: what is on disk at the kill is what the store made durable.
_LAZY_WAL = ("wal_writer_delay=10000ms", "wal_writer_flush_after=0", "bgwriter_lru_maxpages=0", "autovacuum=off")


async def _offsets_after_a_crash(pg: PostgresServer) -> dict[int, int]:
    await asyncio.to_thread(pg.kill)
    for _ in range(60):
        try:
            await asyncio.to_thread(pg.start, timeout=60)
            break
        except ServiceStartError:  # orphaned backends may hold shared memory a moment
            await asyncio.sleep(1)
    pool = await create_pool(pg.url, min_size=1, max_size=1)
    try:
        return await PostgresLedgerStore(pool=pool).load_offsets(group="g", topic="t", partitions=[0, 1])
    finally:
        await pool.close()


async def test_durable_offsets_survive_a_kill_of_the_server() -> None:
    """Three rounds: commits advance two partitions without waiting for the disk, the store reads
    the durable offsets, PostgreSQL is killed at once; after crash recovery the stored offsets are
    at least those read (a commit the server lost would have taken them back)."""
    pg = PostgresServer(datadir=server_datadir("durable-offsets"), durable=True, settings=_LAZY_WAL)
    try:
        await asyncio.to_thread(pg.start)
        await migrate_url(pg.url)
        starts: dict[int, int | None] = {0: None, 1: None}
        for round_ in range(3):
            pool = await create_pool(pg.url, min_size=1, max_size=2)
            try:
                store = PostgresLedgerStore(pool=pool)
                for p in (0, 1):
                    end = (starts[p] or 0) + 10 + round_ + p
                    await store.commit(PartitionCommit("g", "t", p, starts[p], end, [], []))
                    starts[p] = end
                durable = await store.durable_offsets(group="g", topic="t", partitions=[0, 1])
            finally:
                pool.terminate()
            assert durable == starts
            assert await _offsets_after_a_crash(pg) == durable, f"round {round_}"
    finally:
        await asyncio.to_thread(pg.stop)
        remove_datadir(pg.datadir)
