"""``sealtrail ledger``: wires the Kafka driver, the worker, the checkpointer and the health app."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg
from fastapi import FastAPI

from sealtrail.infra.bus import TopicSpec
from sealtrail.infra.gctune import tune_gc
from sealtrail.infra.kafka import KafkaPublisher
from sealtrail.infra.postgres import connect, create_pool, migrate
from sealtrail.infra.settings import Settings
from sealtrail.infra.workerapp import WorkerExit, worker_app
from services.ledger.checkpoint_postgres import PostgresCheckpointStore
from services.ledger.checkpointer import Checkpointer
from services.ledger.deadletter import DeadLetterSink
from services.ledger.kafka_driver import KafkaLedgerDriver
from services.ledger.store_postgres import PostgresLedgerStore
from services.ledger.worker import LedgerWorker

log = logging.getLogger("sealtrail.ledger")


def topics(settings: Settings) -> list[TopicSpec]:
    """The topics the ledger reads and writes, as it creates them when missing."""
    common = {"replication": settings.topic_replication, "min_insync": settings.topic_min_insync}
    return [
        TopicSpec(settings.sealed_topic, settings.topic_partitions, **common),
        TopicSpec(settings.dlq_topic, 1, retention_ms=30 * 24 * 3600 * 1000, **common),
        TopicSpec(settings.checkpoints_topic, 1, retention_ms=-1, **common),
    ]


class LedgerService:
    """One ledger process: consumer-group member plus checkpointer."""

    def __init__(self, settings: Settings, *, max_records: int = 5000) -> None:
        self.settings = settings
        self._max_records = max_records
        self._stop = asyncio.Event()
        self.ready = False
        self.driver: KafkaLedgerDriver | None = None
        self.checkpointer: Checkpointer | None = None

    async def run(self) -> None:
        s = self.settings
        pool = await create_pool(s.require_database(), min_size=2, max_size=max(4, s.db_pool_max),
                                 application_name="sealtrail-ledger")
        publisher = KafkaPublisher(bootstrap=s.require_kafka())
        try:
            async with connect(s.require_database()) as conn:
                await migrate(conn)
            await publisher.start()
            await publisher.ensure_topics(topics(s))
            await self._run_parts(pool, publisher)
        finally:
            await publisher.stop()
            await pool.close()

    async def _run_parts(self, pool: asyncpg.Pool, publisher: KafkaPublisher) -> None:
        s = self.settings
        store = PostgresLedgerStore(pool=pool)
        dead_letters = DeadLetterSink(publisher=publisher, topic=s.dlq_topic)
        worker = LedgerWorker(store=store, dead_letters=dead_letters, group=s.ledger_group,
                              topic=s.sealed_topic, origin_prefix=s.origin_prefix,
                              lookup_duplicates=s.ledger_lookup_duplicates)
        self.driver = KafkaLedgerDriver(bootstrap=s.require_kafka(), topic=s.sealed_topic,
                                        group=s.ledger_group, worker=worker, store=store,
                                        max_records=self._max_records, instance_id=s.ledger_instance_id,
                                        fetch_min_bytes=s.ledger_fetch_min_bytes)
        self.checkpointer = Checkpointer(store=PostgresCheckpointStore(pool=pool),
                                         key_dir=s.signing_key_dir, key_name=s.key_name,
                                         interval_s=s.checkpoint_interval_s, publisher=publisher,
                                         topic=s.checkpoints_topic)
        await self.checkpointer.ensure_keys()
        tune_gc()
        tasks = [asyncio.create_task(self.driver.run(), name="ledger-consumer"),
                 asyncio.create_task(self.checkpointer.run(self._stop), name="ledger-checkpointer")]
        self.ready = True
        stopping = asyncio.create_task(self._stop.wait(), name="ledger-stop")
        try:
            # A part that ends on its own (an error it does not handle) ends the process, which then
            # exits non-zero to be restarted, instead of running on without a consumer or checkpointer.
            await asyncio.wait([stopping, *tasks], return_when=asyncio.FIRST_COMPLETED)
            for t in tasks:
                if t.done() and not self._stop.is_set():
                    raise RuntimeError(f"{t.get_name()} ended") from t.exception()
        finally:
            stopping.cancel()
            self._stop.set()
            self.ready = False
            self.driver.stop()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait_for(t, timeout=15)

    def stop(self) -> None:
        self._stop.set()


def health_app(service: LedgerService) -> tuple[FastAPI, WorkerExit]:
    """/healthz, /readyz (with the assigned partitions) and /metrics of one ledger, which it runs."""
    return worker_app(
        name="ledger", run=service.run, stop=service.stop,
        readiness=lambda: (service.ready, {"partitions": service.driver.assigned if service.driver else []}),
    )
