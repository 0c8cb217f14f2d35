"""Kafka adapter of the bus port (aiokafka). Kafka errors are translated here, once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from aiokafka.partitioner import DefaultPartitioner

from sealtrail.errors import UnavailableError
from sealtrail.infra.bus import TopicSpec

DEFAULT_PUBLISH_TIMEOUT_S = 10.0
DEFAULT_MAX_REQUEST_BYTES = 8 * 1024 * 1024
DEFAULT_MAX_BATCH_BYTES = 1024 * 1024
"""Largest record batch the producer builds: within the broker's default ``message.max.bytes``
(1 MiB + 12), which applies to a whole batch; one record larger than this still goes alone."""

_partitioner = DefaultPartitioner()
log = logging.getLogger("sealtrail.kafka")


def partition_for(key: bytes, partitions: Iterable[int]) -> int:
    """The partition aiokafka's (and Java's) default partitioner picks for ``key`` (murmur2)."""
    ordered = sorted(partitions)
    return int(_partitioner(key, ordered, ordered))


def group_by_key(records: Sequence[tuple[bytes, bytes]]) -> dict[bytes, list[bytes]]:
    """Values per key, each list in the order given (one request of ingest is one key)."""
    groups: dict[bytes, list[bytes]] = {}
    for key, value in records:
        values = groups.get(key)
        if values is None:
            groups[key] = [value]
        else:
            values.append(value)
    return groups


class KafkaPublisher:
    """Idempotent producer (acks=all, enable_idempotence); the message key is the log id.

    A publish fills record batches itself, one run per key, and hands them to the producer whole
    (``send_batch``) instead of queuing record by record. The partition of a key is the one the
    default partitioner gives, so a log keeps its partition whichever way it was published.

    Records go uncompressed by default: they are mostly ciphertext, and lz4 (which aiokafka runs
    at level 9) cost about six times the producer's CPU per record when measured on a 2-core box.
    """

    def __init__(
        self,
        *,
        bootstrap: str,
        timeout_s: float = DEFAULT_PUBLISH_TIMEOUT_S,
        linger_ms: int = 2,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
        max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES,
        compression: str | None = None,
    ) -> None:
        self._bootstrap = bootstrap
        self._timeout_s = timeout_s
        self._settings: dict[str, Any] = {
            "bootstrap_servers": bootstrap, "acks": "all", "enable_idempotence": True,
            "linger_ms": linger_ms, "max_batch_size": max_batch_bytes, "max_request_size": max_request_bytes,
            "compression_type": compression, "request_timeout_ms": int(timeout_s * 1000),
        }
        self._producer = AIOKafkaProducer(**self._settings)
        self._retired: AIOKafkaProducer | None = None
        """A producer that failed to complete a publish: replaced before the next one."""
        self._replacing = asyncio.Lock()
        # One submitter per partition at a time: keeps a publish's batches contiguous, and
        # queues publishers fairly here rather than in the accumulator, whose wait for a free
        # slot charges each further wait against the time since the first (a spurious
        # KafkaTimeoutError when many publishers wait for the same partition).
        self._submit_locks: dict[tuple[str, int], asyncio.Lock] = {}
        self._started = False

    async def start(self) -> None:
        try:
            await self._producer.start()
        except (KafkaError, OSError) as e:
            await self._producer.stop()
            raise UnavailableError(f"Kafka unreachable at start: {type(e).__name__}", retry_after=2) from e
        self._started = True

    async def stop(self) -> None:
        if self._started:
            await self._producer.stop()
            self._started = False

    @property
    def healthy(self) -> bool:
        """Started, and no publish has failed since the producer was last (re)started."""
        return self._started and self._retired is None

    async def publish(self, topic: str, records: Sequence[tuple[bytes, bytes]]) -> None:
        """Publish ``records`` and wait until Kafka acknowledged every one.

        A publish that fails (no acknowledgement in time, a broker error) retires the producer:
        the batches it gave up on took sequence numbers that are never written, and a broker that
        comes back would refuse every later batch of that producer id as out of sequence. The
        next publish starts a new producer first (a new producer id), so ingest recovers on its
        own once Kafka is back.
        """
        if not self._started:
            raise UnavailableError("Kafka producer is not started", retry_after=2)
        if not records:
            return
        producer = await self._usable_producer()
        try:
            async with asyncio.timeout(self._timeout_s):
                partitions = await producer.partitions_for(topic)
                deliveries: list[asyncio.Future[Any]] = []
                for key, values in group_by_key(records).items():
                    deliveries += await self._submit(producer, topic, partition_for(key, partitions), key, values)
                await asyncio.gather(*deliveries)
        except (KafkaError, OSError, TimeoutError) as e:
            if producer is self._producer:
                self._retired = producer
            raise UnavailableError(f"Kafka did not acknowledge: {type(e).__name__}", retry_after=2) from e

    async def _usable_producer(self) -> AIOKafkaProducer:
        """The current producer, replaced first when a publish through it failed."""
        if self._retired is None:
            return self._producer
        async with self._replacing:
            retired = self._retired
            if retired is not None:
                with contextlib.suppress(Exception):  # it failed already; its own errors are moot
                    async with asyncio.timeout(self._timeout_s):
                        await retired.stop()
                fresh = AIOKafkaProducer(**self._settings)
                try:
                    async with asyncio.timeout(self._timeout_s):
                        await fresh.start()
                except (KafkaError, OSError, TimeoutError) as e:
                    with contextlib.suppress(Exception):
                        await fresh.stop()
                    raise UnavailableError(f"Kafka unreachable: {type(e).__name__}", retry_after=2) from e
                self._producer, self._retired = fresh, None
                self._submit_locks.clear()
                log.warning("kafka producer replaced after a failed publish")
        return self._producer

    async def _submit(self, producer: AIOKafkaProducer, topic: str, partition: int, key: bytes,
                      values: list[bytes]) -> list[asyncio.Future[Any]]:
        """Queue ``values`` under ``key`` for one partition, in order; the delivery futures."""
        lock = self._submit_locks.setdefault((topic, partition), asyncio.Lock())
        futures = []
        async with lock:
            batch = producer.create_batch()
            for value in values:
                if batch.append(key=key, value=value, timestamp=None) is None:
                    futures.append(await producer.send_batch(batch, topic, partition=partition))
                    batch = producer.create_batch()
                    batch.append(key=key, value=value, timestamp=None)  # the first record always fits
            batch.close()  # a closed batch is sent at once instead of lingering for more records
            futures.append(await producer.send_batch(batch, topic, partition=partition))
        return futures

    async def ensure_topics(self, specs: Sequence[TopicSpec]) -> None:
        await ensure_topics(self._bootstrap, specs)


async def ensure_topics(bootstrap: str, specs: Sequence[TopicSpec]) -> None:
    """Create the missing topics with their partitions, replication, min ISR and retention."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        new = [
            NewTopic(
                s.name, num_partitions=s.partitions, replication_factor=s.replication,
                topic_configs={"min.insync.replicas": str(s.min_insync), "retention.ms": str(s.retention_ms),
                               **({} if s.segment_ms is None else {"segment.ms": str(s.segment_ms)})},
            )
            for s in specs if s.name not in existing
        ]
        if new:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(new)
    except (KafkaError, OSError) as e:
        raise UnavailableError(f"Kafka admin failed: {type(e).__name__}", retry_after=2) from e
    finally:
        await admin.close()
