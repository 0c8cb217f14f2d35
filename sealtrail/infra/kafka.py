"""Kafka adapter of the bus port (aiokafka). Kafka errors are translated here, once."""

from __future__ import annotations

import asyncio
import contextlib
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
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            enable_idempotence=True,
            linger_ms=linger_ms,
            max_batch_size=max_batch_bytes,
            max_request_size=max_request_bytes,
            compression_type=compression,
            request_timeout_ms=int(timeout_s * 1000),
        )
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

    async def publish(self, topic: str, records: Sequence[tuple[bytes, bytes]]) -> None:
        if not self._started:
            raise UnavailableError("Kafka producer is not started", retry_after=2)
        if not records:
            return
        try:
            async with asyncio.timeout(self._timeout_s):
                partitions = await self._producer.partitions_for(topic)
                deliveries: list[asyncio.Future[Any]] = []
                for key, values in group_by_key(records).items():
                    deliveries += await self._submit(topic, partition_for(key, partitions), key, values)
                await asyncio.gather(*deliveries)
        except (KafkaError, OSError, TimeoutError) as e:
            raise UnavailableError(f"Kafka did not acknowledge: {type(e).__name__}", retry_after=2) from e

    async def _submit(self, topic: str, partition: int, key: bytes, values: list[bytes]) -> list[asyncio.Future[Any]]:
        """Queue ``values`` under ``key`` for one partition, in order; the delivery futures."""
        lock = self._submit_locks.setdefault((topic, partition), asyncio.Lock())
        futures = []
        async with lock:
            batch = self._producer.create_batch()
            for value in values:
                if batch.append(key=key, value=value, timestamp=None) is None:
                    futures.append(await self._producer.send_batch(batch, topic, partition=partition))
                    batch = self._producer.create_batch()
                    batch.append(key=key, value=value, timestamp=None)  # the first record always fits
            batch.close()  # a closed batch is sent at once instead of lingering for more records
            futures.append(await self._producer.send_batch(batch, topic, partition=partition))
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
                topic_configs={"min.insync.replicas": str(s.min_insync), "retention.ms": str(s.retention_ms)},
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
