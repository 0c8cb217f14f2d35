"""The ledger half of the embedded default: local log, SQLite store, worker, driver, checkpointer.

The same components as production (``services.ledger``), with the embedded adapters behind the
ports (docs/embedded.md). :class:`SharedLog` lets ingest and the query API publish to the one
:class:`~sealtrail.infra.locallog.LocalLog` this process opened without starting or stopping it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from sealtrail.cli.embedded.datadir import (
    CHECKPOINTS_TOPIC,
    DLQ_TOPIC,
    KEY_NAME,
    SEALED_PARTITIONS,
    SEALED_TOPIC,
    DataDir,
)
from sealtrail.core.witnessing import WitnessingConfig
from sealtrail.infra.bus import TopicSpec
from sealtrail.infra.locallog import LocalLog
from sealtrail.infra.sqlite import SqliteDatabase
from services.ledger.checkpointer import Checkpointer
from services.ledger.deadletter import DeadLetterSink
from services.ledger.locallog import LocalLedgerDriver
from services.ledger.sqlite.checkpoints import SqliteCheckpointStore
from services.ledger.sqlite.store import SqliteLedgerStore
from services.ledger.witnessing import LedgerWitnessing
from services.ledger.worker import LedgerWorker

LEDGER_GROUP = "sealtrail-ledger"
DEFAULT_CHECKPOINT_INTERVAL_S = 0.5
DEFAULT_MAX_RECORDS = 5000
TOPICS = (TopicSpec(SEALED_TOPIC, SEALED_PARTITIONS), TopicSpec(DLQ_TOPIC, 1), TopicSpec(CHECKPOINTS_TOPIC, 1))


class SharedLog:
    """A :class:`BusPublisher` view of a local log owned by someone else: start and stop do nothing."""

    def __init__(self, log: LocalLog) -> None:
        self._log = log

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def publish(self, topic: str, records: Sequence[tuple[bytes, bytes]]) -> None:
        await self._log.publish(topic, records)

    async def ensure_topics(self, specs: Sequence[TopicSpec]) -> None:
        await self._log.ensure_topics(specs)


@dataclass
class EmbeddedLedger:
    """The running ledger: its driver (positions) and checkpointer."""

    driver: LocalLedgerDriver
    checkpointer: Checkpointer


@contextlib.asynccontextmanager
async def running_ledger(data: DataDir, db: SqliteDatabase, log: LocalLog, *,
                         checkpoint_interval_s: float = DEFAULT_CHECKPOINT_INTERVAL_S,
                         max_records: int = DEFAULT_MAX_RECORDS,
                         witnesses: WitnessingConfig | None = None) -> AsyncIterator[EmbeddedLedger]:
    """Consume the sealed topic into SQLite and sign checkpoints for the block; stop after it.

    ``log`` MUST be started; its topics are created here when missing.
    """
    await log.ensure_topics(TOPICS)
    store = SqliteLedgerStore(db=db)
    worker = LedgerWorker(store=store, dead_letters=DeadLetterSink(publisher=log, topic=DLQ_TOPIC),
                          group=LEDGER_GROUP, topic=SEALED_TOPIC, lookup_duplicates="after_conflict")
    driver = LocalLedgerDriver(log=log, topic=SEALED_TOPIC, group=LEDGER_GROUP, worker=worker, store=store,
                               max_records=max_records)
    checkpoints = SqliteCheckpointStore(db=db)
    witnessing = None if witnesses is None else LedgerWitnessing(witnesses, store=checkpoints)
    checkpointer = Checkpointer(store=checkpoints, key_dir=data.keys, key_name=KEY_NAME,
                                interval_s=checkpoint_interval_s, publisher=log, topic=CHECKPOINTS_TOPIC,
                                witnessing=witnessing)
    await checkpointer.ensure_keys()
    stop = asyncio.Event()
    tasks = [asyncio.create_task(driver.run(), name="ledger-driver"),
             asyncio.create_task(checkpointer.run(stop), name="ledger-checkpointer")]
    try:
        yield EmbeddedLedger(driver, checkpointer)
    finally:
        driver.stop()
        stop.set()
        await asyncio.gather(*tasks)
        if witnessing is not None:
            await witnessing.close()
