"""The bus port: an ordered, durable, partitioned log of records (Kafka, or a local log).

Adapters: :mod:`sealtrail.infra.kafka` (production) and :mod:`sealtrail.infra.locallog` (the
embedded default, one process). Both pass ``tests/contract/bus_contract.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class BusRecord:
    """A record read from the bus, with its position."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """How a topic is created when it does not exist."""

    name: str
    partitions: int
    replication: int = 1
    min_insync: int = 1
    retention_ms: int = 7 * 24 * 3600 * 1000
    segment_ms: int | None = None
    """Kafka's ``segment.ms``: records are deleted by whole segments, and the segment being
    written only once rolled. None: the broker's default (seven days)."""


class BusPublisher(Protocol):
    """Publishes records. Records with the same key MUST land in one partition, in call order."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def publish(self, topic: str, records: Sequence[tuple[bytes, bytes]]) -> None:
        """Publish (key, value) pairs.

        MUST return only once every record is durably acknowledged (acks=all). MUST raise
        :class:`~sealtrail.errors.UnavailableError` when that cannot be confirmed within the
        adapter's timeout; then none, some or all records may have been written, and the caller
        MUST treat all of them as not accepted (a retry with the same event ids is safe because
        the ledger deduplicates by event id).
        """
        ...

    async def ensure_topics(self, specs: Sequence[TopicSpec]) -> None:
        """Create missing topics; existing ones are left as they are."""
        ...
