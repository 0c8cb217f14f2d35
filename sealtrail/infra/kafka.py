"""Kafka adapter of the bus port (aiokafka). Kafka errors are translated here, once."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from sealtrail.errors import UnavailableError
from sealtrail.infra.bus import TopicSpec

DEFAULT_PUBLISH_TIMEOUT_S = 10.0
DEFAULT_MAX_REQUEST_BYTES = 8 * 1024 * 1024


class KafkaPublisher:
    """Idempotent producer (acks=all, enable_idempotence); the message key is the log id."""

    def __init__(
        self,
        *,
        bootstrap: str,
        timeout_s: float = DEFAULT_PUBLISH_TIMEOUT_S,
        linger_ms: int = 2,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    ) -> None:
        self._bootstrap = bootstrap
        self._timeout_s = timeout_s
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            enable_idempotence=True,
            linger_ms=linger_ms,
            max_batch_size=1024 * 1024,
            max_request_size=max_request_bytes,
            compression_type=None,
            request_timeout_ms=int(timeout_s * 1000),
        )
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
        try:
            futures = [await self._producer.send(topic, value=v, key=k) for k, v in records]
            await asyncio.wait_for(asyncio.gather(*futures), timeout=self._timeout_s)
        except (KafkaError, OSError, TimeoutError) as e:
            raise UnavailableError(f"Kafka did not acknowledge: {type(e).__name__}", retry_after=2) from e

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
