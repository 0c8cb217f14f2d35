"""``sealtrail ledger``: wires the Kafka driver, the worker, the checkpointer, the trimmer of the
sealed topic (:mod:`services.ledger.trimming`, unless ``ledger_trim_kafka`` is off) and the health app.

Readiness (``/readyz``) means the ledger is sequencing: it runs, PostgreSQL answered a ``SELECT 1``
within the last :data:`DB_CHECK_STALE_S` seconds (checked every :data:`DB_CHECK_INTERVAL_S` in the
background, so a probe costs nothing), it has partitions assigned and positioned at their stored
offsets, and the brokers answered a fetch within :data:`KAFKA_SILENCE_S`. Otherwise ``/readyz``
answers 503 with the reason. A ledger with no partition (more ledgers than partitions) is not ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import asyncpg
from fastapi import FastAPI

from sealtrail.core.witnessing import WitnessingConfig
from sealtrail.infra.bus import TopicSpec
from sealtrail.infra.gctune import tune_gc
from sealtrail.infra.kafka import KafkaPublisher
from sealtrail.infra.postgres import connect, create_pool, migrate
from sealtrail.infra.settings import Settings
from sealtrail.infra.workerapp import WorkerExit, worker_app
from services.ledger.checkpointer import Checkpointer
from services.ledger.deadletter import DeadLetterSink
from services.ledger.kafka import KafkaLedgerDriver
from services.ledger.postgres.checkpoints import PostgresCheckpointStore
from services.ledger.postgres.store import PostgresLedgerStore
from services.ledger.trimming import KafkaTrimmer
from services.ledger.witnessing import LedgerWitnessing
from services.ledger.worker import LedgerWorker

log = logging.getLogger("sealtrail.ledger")

DB_CHECK_INTERVAL_S = 1.0
DB_CHECK_TIMEOUT_S = 2.0
DB_CHECK_STALE_S = 3.0
# Longer than the longest poll a healthy ledger handles between two fetches of a partition.
KAFKA_SILENCE_S = 15.0


def topics(settings: Settings) -> list[TopicSpec]:
    """The topics the ledger reads and writes, as it creates them when missing."""
    common = {"replication": settings.topic_replication, "min_insync": settings.topic_min_insync}
    return [
        settings.sealed_topic_spec(),
        TopicSpec(settings.dlq_topic, 1, retention_ms=30 * 24 * 3600 * 1000, **common),
        TopicSpec(settings.checkpoints_topic, 1, retention_ms=-1, **common),
    ]


class LedgerService:
    """One ledger process: consumer-group member plus checkpointer."""

    def __init__(self, settings: Settings, *, max_records: int = 5000,
                 witnesses: WitnessingConfig | None = None) -> None:
        self.settings = settings
        self._witnesses = witnesses
        self._max_records = max_records
        self._stop = asyncio.Event()
        self.ready = False
        self.driver: KafkaLedgerDriver | None = None
        self.checkpointer: Checkpointer | None = None
        self._db_ok_at: float | None = None  # monotonic time of the last answered database check
        self._db_error = "not checked yet"

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
        checkpoints = PostgresCheckpointStore(pool=pool)
        witnessing = None if self._witnesses is None else LedgerWitnessing(self._witnesses, store=checkpoints)
        self.checkpointer = Checkpointer(store=checkpoints,
                                         key_dir=s.signing_key_dir, key_name=s.key_name,
                                         interval_s=s.checkpoint_interval_s, publisher=publisher,
                                         topic=s.checkpoints_topic, witnessing=witnessing)
        await self.checkpointer.ensure_keys()
        tune_gc()
        tasks = [asyncio.create_task(self.driver.run(), name="ledger-consumer"),
                 asyncio.create_task(self.checkpointer.run(self._stop), name="ledger-checkpointer")]
        if s.ledger_trim_kafka:
            trimmer = KafkaTrimmer(bootstrap=s.require_kafka(), topic=s.sealed_topic, group=s.ledger_group,
                                   store=store, interval_s=s.ledger_trim_interval_s)
            tasks.append(asyncio.create_task(trimmer.run(self._stop), name="ledger-trimmer"))
        self.ready = True
        stopping = asyncio.create_task(self._stop.wait(), name="ledger-stop")
        watching = asyncio.create_task(self._watch_database(pool), name="ledger-database-check")
        try:
            # A part that ends on its own (an error it does not handle) ends the process, which then
            # exits non-zero to be restarted, instead of running on without a consumer or checkpointer.
            await asyncio.wait([stopping, *tasks], return_when=asyncio.FIRST_COMPLETED)
            for t in tasks:
                if t.done() and not self._stop.is_set():
                    raise RuntimeError(f"{t.get_name()} ended") from t.exception()
        finally:
            stopping.cancel()
            watching.cancel()
            self._stop.set()
            self.ready = False
            self.driver.stop()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait_for(t, timeout=15)
            if witnessing is not None:
                await witnessing.close()

    def stop(self) -> None:
        self._stop.set()

    async def _watch_database(self, pool: asyncpg.Pool) -> None:
        """Record every :data:`DB_CHECK_INTERVAL_S` whether PostgreSQL answers, for :meth:`readiness`."""
        while not self._stop.is_set():
            try:
                async with asyncio.timeout(DB_CHECK_TIMEOUT_S):
                    await pool.fetchval("SELECT 1")
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as e:
                self._db_error = "no answer in time" if isinstance(e, TimeoutError) else type(e).__name__
            else:
                self._db_ok_at = time.monotonic()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=DB_CHECK_INTERVAL_S)

    def readiness(self) -> tuple[bool, dict[str, object]]:
        """Whether this ledger is sequencing, and the /readyz body fields saying why not."""
        driver = self.driver
        database = self._db_ok_at is not None and time.monotonic() - self._db_ok_at <= DB_CHECK_STALE_S
        silence = driver.seconds_since_fetch() if driver else None
        kafka = silence is not None and silence <= KAFKA_SILENCE_S
        body: dict[str, object] = {
            "partitions": driver.assigned if driver else [],
            "unpositioned": driver.unpositioned if driver else [],
            "database": database, "kafka": kafka,
        }
        reasons = []
        if not self.ready:
            reasons.append("not running")
        if not database:
            reasons.append(f"PostgreSQL unavailable ({self._db_error})")
        if driver is not None and driver.unpositioned:
            reasons.append(f"partitions {driver.unpositioned} assigned but not positioned at their stored offsets")
        if driver is not None and not driver.assigned and not driver.unpositioned:
            reasons.append("no partition assigned")
        elif silence is not None and not kafka:
            reasons.append(f"no answer from Kafka for {silence:.0f} s")
        if reasons:
            body["reason"] = "; ".join(reasons)
        return not reasons, body


def health_app(service: LedgerService) -> tuple[FastAPI, WorkerExit]:
    """/healthz, /readyz (see the module docstring) and /metrics of one ledger, which it runs."""
    return worker_app(name="ledger", run=service.run, stop=service.stop, readiness=service.readiness)
