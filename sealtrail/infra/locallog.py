"""Durable local log: the bus port for the embedded default, in place of Kafka. ONE process only.

Layout under ``root``: ``<topic>/topic.json`` (the partition count, written last when a topic is
created) and ``<topic>/<partition>/<base offset>.log`` segment files (format in
:mod:`sealtrail.infra.logfiles`). An exclusive lock on ``root/.lock`` keeps a second process out:
the wake-ups, the offsets and the append order all live in this process's memory.

Guarantees, as the bus port asks:

- :meth:`LocalLog.publish` returns only after every record is written and fsync'd. On a failure
  it raises :class:`~sealtrail.errors.UnavailableError`, and some of the records may be stored.
- A record's partition is ``CRC-32(key) mod partitions``: stable across processes and releases,
  so one key (one log id) always lands in one partition, in publish order.
- Readers see a record only once it is durable, so a stored consumer offset can never point
  past what survives a crash.
- A crash can tear only the unacknowledged tail of a partition; reopening cuts it off. Any other
  bad frame raises :class:`~sealtrail.errors.CorruptLogError`; nothing is ever misread.

Consumers in the process wait on :meth:`LocalLog.changed`, set by every publish to the topic.
Segments are deleted only by :meth:`LocalLog.drop_before`: whole segments, below an offset the
caller names (what every consumer has committed) and older than a retention time; the segment
being appended to is sealed first when all of it qualifies, so a caught-up log can be emptied.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import re
import time
import zlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import orjson

from sealtrail.errors import InvalidInputError, ServiceStartError, UnavailableError
from sealtrail.infra.bus import BusRecord, TopicSpec
from sealtrail.infra.logfiles import PartitionFiles, Record

# Small enough that trimming whole segments keeps the disk flat (a partition holds at most about
# one segment more than its unsequenced records), large enough that a roll is rare.
DEFAULT_SEGMENT_BYTES = 8 * 1024 * 1024
DEFAULT_READ_MAX_RECORDS = 5000
DEFAULT_READ_MAX_BYTES = 8 * 1024 * 1024
_TOPIC_FILE = "topic.json"
_TOPIC_NAME = re.compile(r"^(?!\.{1,2}$)[A-Za-z0-9._-]{1,200}$")


def partition_for(key: bytes, partitions: int) -> int:
    """The partition of ``key``: CRC-32 of the key modulo the partition count."""
    return zlib.crc32(key) % partitions


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalLog:
    """Topics of partitioned, durable, append-only records in a directory; publisher and reader."""

    def __init__(self, *, root: Path, segment_bytes: int = DEFAULT_SEGMENT_BYTES) -> None:
        self._root = root
        self._segment_bytes = segment_bytes
        self._topics: dict[str, list[PartitionFiles]] = {}
        self._locks: dict[int, asyncio.Lock] = {}
        self._events: dict[str, asyncio.Event] = {}
        self._creating = asyncio.Lock()
        self._lock_fd = -1

    @property
    def root(self) -> Path:
        return self._root

    async def start(self) -> None:
        """Take the directory's lock, then open every topic (cutting torn tails off)."""
        await asyncio.to_thread(self._open)

    async def stop(self) -> None:
        """Wait for appends in flight, close the files and release the lock."""
        for lock in list(self._locks.values()):
            await lock.acquire()
        try:
            for parts in self._topics.values():
                for files in parts:
                    files.close()
            self._topics.clear()
        finally:
            for lock in self._locks.values():
                lock.release()
            self._locks.clear()
            if self._lock_fd >= 0:
                os.close(self._lock_fd)  # releases the flock
                self._lock_fd = -1

    async def ensure_topics(self, specs: Sequence[TopicSpec]) -> None:
        """Create missing topics with their partition counts; existing ones are left as they are."""
        async with self._creating:
            for spec in specs:
                if spec.name not in self._parts_by_name():
                    await asyncio.to_thread(self._create_topic, spec.name, spec.partitions)

    async def publish(self, topic: str, records: Sequence[tuple[bytes, bytes]]) -> None:
        parts = self._parts(topic)
        by_partition: dict[int, list[Record]] = {}
        for key, value in records:
            by_partition.setdefault(partition_for(key, len(parts)), []).append((key, value))
        try:
            await asyncio.gather(*(self._append(parts[p], recs) for p, recs in by_partition.items()))
        finally:
            self._notify(topic)

    def partitions(self, topic: str) -> int:
        return len(self._parts(topic))

    def start_offset(self, topic: str, partition: int) -> int:
        """The first offset still stored."""
        return self._parts(topic)[partition].start

    def end_offset(self, topic: str, partition: int) -> int:
        """The offset after the last durable record."""
        return self._parts(topic)[partition].end

    @property
    def truncated_bytes(self) -> int:
        """Bytes of torn tails cut off when the log was opened."""
        return sum(f.truncated_bytes for parts in self._topics.values() for f in parts)

    def changed(self, topic: str) -> asyncio.Event:
        """An event set by the next publish to ``topic``. Take it BEFORE reading, then wait on it."""
        return self._events.setdefault(topic, asyncio.Event())

    async def read(self, topic: str, partition: int, offset: int, *,
                   max_records: int = DEFAULT_READ_MAX_RECORDS,
                   max_bytes: int = DEFAULT_READ_MAX_BYTES) -> list[BusRecord]:
        """Durable records of one partition from ``offset`` on (from the start if it is older)."""
        files = self._parts(topic)[partition]
        end = files.end
        if offset >= end:
            return []
        try:
            got = await asyncio.to_thread(files.read, offset, end, max_records, max_bytes)
        except FileNotFoundError:  # a segment dropped while it was being read: it is older than the start
            got = await asyncio.to_thread(files.read, max(offset, files.start), end, max_records, max_bytes)
        return [BusRecord(topic, partition, o, k, v) for o, (k, v) in got]

    async def drop_before(self, topic: str, partition: int, offset: int, *, max_age_s: float) -> int:
        """Delete the partition's segments whose records all lie below ``offset`` and that were
        last written more than ``max_age_s`` ago; return the bytes freed. Records at or above
        ``offset`` MUST stay, and do. When the segment being appended to qualifies, an empty one
        is started at the end first, so :meth:`end_offset` and appends are unaffected;
        :meth:`start_offset` moves up to the first record kept (to the end when none is)."""
        files = self._parts(topic)[partition]
        async with self._locks[id(files)]:
            return await asyncio.to_thread(files.drop_before, offset, written_before=time.time() - max_age_s)

    def _parts_by_name(self) -> dict[str, list[PartitionFiles]]:
        if self._lock_fd < 0:
            raise UnavailableError("the local log is not started", retry_after=1.0)
        return self._topics

    def _parts(self, topic: str) -> list[PartitionFiles]:
        if self._lock_fd < 0:
            raise UnavailableError("the local log is not started", retry_after=1.0)
        parts = self._topics.get(topic)
        if parts is None:
            raise UnavailableError(f"topic {topic!r} does not exist in the local log", retry_after=1.0)
        return parts

    async def _append(self, files: PartitionFiles, records: list[Record]) -> None:
        async with self._locks[id(files)]:
            await asyncio.to_thread(files.append, records)

    def _notify(self, topic: str) -> None:
        event = self._events.pop(topic, None)
        if event is not None:
            event.set()

    def _open(self) -> None:
        self._root.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self._root / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            os.close(fd)
            raise ServiceStartError(f"the local log at {self._root} is open in another process") from e
        self._lock_fd = fd
        for meta in sorted(self._root.glob(f"*/{_TOPIC_FILE}")):
            partitions = int(orjson.loads(meta.read_bytes())["partitions"])
            self._load_topic(meta.parent.name, partitions)

    def _load_topic(self, topic: str, partitions: int) -> None:
        parts = [PartitionFiles(self._root / topic / str(p), segment_bytes=self._segment_bytes)
                 for p in range(partitions)]
        try:
            for files in parts:
                files.open()
        except BaseException:
            for files in parts:
                files.close()
            raise
        self._topics[topic] = parts
        self._locks.update((id(f), asyncio.Lock()) for f in parts)

    def _create_topic(self, topic: str, partitions: int) -> None:
        if not _TOPIC_NAME.match(topic) or partitions < 1:
            raise InvalidInputError("topic names are 1-200 of [A-Za-z0-9._-]; partitions >= 1")
        directory = self._root / topic
        directory.mkdir(exist_ok=True, mode=0o700)
        _fsync_dir(self._root)
        meta = directory / _TOPIC_FILE
        if meta.exists():  # created meanwhile
            return
        self._load_topic(topic, partitions)
        tmp = directory / f"{_TOPIC_FILE}.tmp"
        with open(tmp, "wb") as f:
            f.write(orjson.dumps({"partitions": partitions}))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, meta)
        _fsync_dir(directory)


@contextlib.asynccontextmanager
async def opened(root: Path, *, segment_bytes: int = DEFAULT_SEGMENT_BYTES) -> AsyncIterator[LocalLog]:
    """The local log at ``root``, started for the block and stopped after it."""
    log = LocalLog(root=root, segment_bytes=segment_bytes)
    await log.start()
    try:
        yield log
    finally:
        await log.stop()
