"""Dead letters: records the ledger cannot log, kept with their reason instead of dropped.

The envelope carries the record exactly as it was on the sealed topic (ciphertext only: ingest
never publishes plaintext) plus where it came from and why it was refused. The reason names a
field, never a value.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import orjson

from sealtrail.infra.bus import BusPublisher


class SourceRecord(Protocol):
    """A consumed record and where it came from: a :class:`~sealtrail.infra.bus.BusRecord`, or the
    bus client's own record type when it has these attributes (saves a copy per record)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...


@dataclass(frozen=True, slots=True)
class DeadLetter:
    record: SourceRecord
    reason: str
    pointer: str


def envelope(letter: DeadLetter) -> bytes:
    """The dead-letter topic's value for one refused record."""
    r = letter.record
    return orjson.dumps({
        "reason": letter.reason,
        "pointer": letter.pointer,
        "source": {"topic": r.topic, "partition": r.partition, "offset": r.offset},
        "value": base64.b64encode(r.value).decode() if r.value is not None else None,
    })


class DeadLetterSink:
    """Publishes dead letters durably before the offsets that skip them are committed."""

    def __init__(self, *, publisher: BusPublisher, topic: str) -> None:
        self._publisher = publisher
        self._topic = topic

    async def send(self, letters: Sequence[DeadLetter]) -> None:
        if letters:
            await self._publisher.publish(
                self._topic, [(lt.record.key or b"", envelope(lt)) for lt in letters]
            )
