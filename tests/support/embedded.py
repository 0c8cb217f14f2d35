"""The ledger on its embedded pair (local log + SQLite) for tests, and checking a SQLite log.

:func:`embedded_ledger` wires what ``sealtrail serve`` will wire: the local log, the SQLite
ledger store, the worker, the local driver and the checkpointer, all in this process.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sealtrail.core.checkpoint import Checkpoint
from sealtrail.core.merkle import verify_consistency
from sealtrail.core.verify import TrustedKey, TrustedKeys, verify_run
from sealtrail.infra.bus import TopicSpec
from sealtrail.infra.locallog import LocalLog
from sealtrail.infra.sqlite import SqliteDatabase, from_db_time, open_database
from services.ledger.checkpointer import Checkpointer
from services.ledger.deadletter import DeadLetterSink
from services.ledger.locallog import LocalLedgerDriver
from services.ledger.sqlite import tree as tree_sqlite
from services.ledger.sqlite.checkpoints import SqliteCheckpointStore
from services.ledger.sqlite.store import SqliteLedgerStore
from services.ledger.worker import LedgerWorker

TOPIC, DLQ, CHECKPOINTS, GROUP = "sealed", "dlq", "checkpoints", "ledger"


@dataclass
class EmbeddedLedger:
    db: SqliteDatabase
    log: LocalLog
    driver: LocalLedgerDriver
    checkpoints: SqliteCheckpointStore
    checkpointer: Checkpointer


async def add_tenants(db: SqliteDatabase, *tenants: str) -> None:
    rows = [(t, os.urandom(72)) for t in tenants]
    await db.write(lambda c: c.executemany(
        "INSERT INTO tenants (tenant_id, index_key, index_key_kek) VALUES (?, ?, 'test')"
        " ON CONFLICT DO NOTHING", rows))


@contextlib.asynccontextmanager
async def embedded_ledger(root: Path, *, max_records: int = 500, poll_interval_s: float = 0.5,
                          checkpoint_interval_s: float = 0.2) -> AsyncIterator[EmbeddedLedger]:
    """The whole embedded ledger under ``root``, running for the block and stopped after it."""
    db = await open_database(root / "sealtrail.db")
    log = LocalLog(root=root / "log")
    try:
        await log.start()
        await log.ensure_topics([TopicSpec(TOPIC, 3), TopicSpec(DLQ, 1), TopicSpec(CHECKPOINTS, 1)])
        store = SqliteLedgerStore(db=db)
        worker = LedgerWorker(store=store, dead_letters=DeadLetterSink(publisher=log, topic=DLQ),
                              group=GROUP, topic=TOPIC)
        driver = LocalLedgerDriver(log=log, topic=TOPIC, group=GROUP, worker=worker, store=store,
                                   max_records=max_records, poll_interval_s=poll_interval_s)
        checkpoints = SqliteCheckpointStore(db=db)
        checkpointer = Checkpointer(store=checkpoints, key_dir=root / "keys",
                                    interval_s=checkpoint_interval_s, publisher=log, topic=CHECKPOINTS)
        await checkpointer.ensure_keys()
        stop = asyncio.Event()
        tasks = [asyncio.create_task(driver.run()), asyncio.create_task(checkpointer.run(stop))]
        try:
            yield EmbeddedLedger(db, log, driver, checkpoints, checkpointer)
        finally:
            driver.stop()
            stop.set()
            await asyncio.gather(*tasks)
    finally:
        await log.stop()
        await db.close()


def _trusted(conn: sqlite3.Connection) -> TrustedKeys:
    rows = conn.execute("SELECT vkey, not_before, not_after FROM signing_keys"
                        " WHERE purpose IN ('checkpoint', 'cosign')").fetchall()
    return TrustedKeys(
        TrustedKey.from_vkey(vkey, not_before=int(from_db_time(nb).timestamp()),
                             not_after=int(from_db_time(na).timestamp()) + 1 if na else None)
        for vkey, nb, na in rows)


def check_log(db_path: Path, log_id: str) -> int:
    """Verify one log stored in SQLite end to end with the log-core verifier; return its size.

    As :func:`tests.support.ledger.check_log`: indices contiguous from 0, chains and roots
    recomputed, every checkpoint signed by a published key, successive checkpoints consistent.
    """
    conn = sqlite3.connect(db_path)
    try:
        keys = _trusted(conn)
        (origin,) = conn.execute("SELECT origin FROM logs WHERE log_id = ?", (log_id,)).fetchone()
        notes = conn.execute("SELECT note FROM checkpoints WHERE log_id = ? ORDER BY tree_size",
                             (log_id,)).fetchall()
        cps: list[Checkpoint] = [keys.verify_checkpoint(n, origin=origin).checkpoint for (n,) in notes]
        for a, b in itertools.pairwise(cps):
            proof = tree_sqlite.consistency_proof(conn, log_id, a.size, b.size)
            verify_consistency(a.size, b.size, proof, a.root, b.root)
        rows = conn.execute("SELECT idx, entry, chain FROM entries WHERE log_id = ? ORDER BY idx",
                            (log_id,)).fetchall()
        result = verify_run([r[1] for r in rows], [r[2] for r in rows], cps, origin=origin,
                            indices=[r[0] for r in rows])
        assert result.entries == len(rows)
        return len(rows)
    finally:
        conn.close()


def read_rows(db: Path, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
    """Rows of one query on ``db`` over a read-only connection (while the server writes to it)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()
