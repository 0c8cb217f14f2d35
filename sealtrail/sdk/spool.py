"""A bounded, crash-safe on-disk spool of event batches for while ingest is unreachable.

Layout of the spool directory (mode 0700, one client at a time, held by an flock on ``LOCK``):

- ``<seq>.seg``: append-only segment of records, ``seq`` a 20-digit counter. A record is
  ``b"STS1"``, the body length and the CRC-32 of the body (big-endian uint32 each), then the body:
  ``{"events": [...]}`` as JSON. Every append is fsync'd before :meth:`Spool.append` returns.
- ``<seq>.ack``: append-only big-endian uint64 end offsets of the records already delivered.

The segment being written and the ack file being appended stay open: an append is one
``write`` and one ``fdatasync`` of an open descriptor. A batch peeked from the spool carries the
request body ready to send (``{"events": [...]}``), spliced from the records' bytes without
decoding them when this process wrote them (it knows their event counts).

A crash can leave a torn record at the end of a segment or a torn offset at the end of an ack
file; opening the spool drops such tails. A crash between delivery and the ack write makes the
batch go out again after restart, with the same event ids, which ingest and the ledger tolerate.
Segments are deleted once every record in them is acknowledged.
"""

from __future__ import annotations

import fcntl
import os
import struct
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

MAGIC = b"STS1"
HEADER = struct.Struct(">4sII")
ACK = struct.Struct(">Q")
DEFAULT_SEGMENT_BYTES = 4 * 1024 * 1024
LOCK = "LOCK"


class SpoolFullError(Exception):
    """The spool holds ``max_bytes`` already; the caller must keep the batch or refuse new events."""


_PREFIX, _SUFFIX = b'{"events":[', b"]}"


@dataclass(frozen=True, slots=True)
class SpooledBatch:
    segment: int
    end: int
    body: bytes
    """The batch as ``{"events": [...]}`` JSON, ready to post."""
    count: int

    @property
    def events(self) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = orjson.loads(self.body)["events"]
        return events


def encode_record(events: list[dict[str, Any]]) -> bytes:
    body = orjson.dumps({"events": events})
    return HEADER.pack(MAGIC, len(body), zlib.crc32(body)) + body


def _inner(body: bytes) -> bytes:
    """The events of a record body without the enclosing ``{"events":[`` and ``]}``."""
    if body.startswith(_PREFIX) and body.endswith(_SUFFIX):
        return body[len(_PREFIX):-len(_SUFFIX)]
    return orjson.dumps(orjson.loads(body)["events"])[1:-1]  # written by another encoder


def read_records(data: bytes) -> tuple[list[tuple[int, int]], int]:
    """The (start, end) offsets of the intact records of a segment, and where the intact part ends."""
    spans = list(_records(data))
    return spans, spans[-1][1] if spans else 0


def _records(data: bytes) -> Iterator[tuple[int, int]]:
    """The (start, end) offsets of the intact records of ``data``, up to the first that is not."""
    pos = 0
    while pos + HEADER.size <= len(data):
        magic, length, crc = HEADER.unpack_from(data, pos)
        end = pos + HEADER.size + length
        if magic != MAGIC or end > len(data) or zlib.crc32(data[pos + HEADER.size:end]) != crc:
            return
        yield pos, end
        pos = end


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _open_append(path: Path) -> int:
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)


def _write_durably(fd: int, data: bytes) -> float:
    """Append ``data`` and fdatasync; the seconds it took."""
    started = time.perf_counter()
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    os.fdatasync(fd)  # an append: the data and the new size, without the timestamps
    return time.perf_counter() - started


class _Appender:
    """One open append-only file at a time (the newest segment, or the ack file being written)."""

    def __init__(self) -> None:
        self.seq = 0
        self.fd: int | None = None

    def write(self, seq: int, path: Path, data: bytes) -> float:
        if self.fd is None or self.seq != seq:
            self.close()
            self.fd, self.seq = _open_append(path), seq
        return _write_durably(self.fd, data)

    def forget(self, seq: int) -> None:
        if self.seq == seq:
            self.close()

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class Spool:
    """Batches on disk, delivered oldest first. Not thread-safe: one task uses it at a time."""

    def __init__(
        self, directory: Path, *, max_bytes: int, segment_bytes: int = DEFAULT_SEGMENT_BYTES
    ) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._lock = open(directory / LOCK, "a+b")  # noqa: SIM115 - held for the spool's lifetime
        try:
            fcntl.flock(self._lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            self._lock.close()
            raise RuntimeError(f"spool {directory} is in use by another client") from e
        self._sizes: dict[int, int] = {}
        self._acked: dict[int, int] = {}
        self._counts: dict[int, dict[int, int]] = {}
        """Per segment, the event count of each record this process appended, by its offset."""
        self._segments, self._acks = _Appender(), _Appender()
        self.sync_s = 0.0
        """Moving average of the seconds an append's write and fdatasync take."""
        self._recover()

    def close(self) -> None:
        self._segments.close()
        self._acks.close()
        self._lock.close()

    @property
    def size_bytes(self) -> int:
        return sum(self._sizes.values())

    def __bool__(self) -> bool:
        """True while some batch awaits delivery."""
        return any(self._acked.get(seq, 0) < size for seq, size in tuple(self._sizes.items()))

    def append(self, events: list[dict[str, Any]]) -> None:
        """Add a batch durably (fsync'd); raise SpoolFullError past ``max_bytes``."""
        record = encode_record(events)
        if self.size_bytes + len(record) > self.max_bytes:
            raise SpoolFullError(f"spool {self.directory} is full ({self.max_bytes} bytes)")
        seq = max(self._sizes, default=0)
        if seq == 0 or self._sizes[seq] + len(record) > self.segment_bytes:
            if seq and self._acked.get(seq, 0) >= self._sizes[seq]:
                self._drop(seq)
            seq += 1
            self._sizes[seq] = 0
            self._segments.write(seq, self._segment(seq), b"")
            _fsync_dir(self.directory)
        took = self._segments.write(seq, self._segment(seq), record)
        self.sync_s += (took - self.sync_s) / 8
        self._counts.setdefault(seq, {})[self._sizes[seq]] = len(events)
        self._sizes[seq] += len(record)

    def mark(self) -> tuple[int, int]:
        """Where the spool ends now: :meth:`peek` given it stops there."""
        seq = max(self._sizes, default=0)
        return seq, self._sizes.get(seq, 0)

    def peek(self, max_events: int = 0, *, until: tuple[int, int] | None = None) -> SpooledBatch | None:
        """The oldest batch not yet acknowledged, or None. With ``max_events``, the records that
        follow it in the same segment join it while the batch stays within ``max_events`` events
        (acknowledging the batch acknowledges them all). With ``until`` (a :meth:`mark`), records
        appended after that mark are left for a later peek."""
        for seq in sorted(self._sizes):
            if until is not None and seq > until[0]:
                return None
            start = self._acked.get(seq, 0)
            stop = self._sizes[seq] if until is None or seq < until[0] else min(until[1], self._sizes[seq])
            if start < stop:
                with open(self._segment(seq), "rb") as f:
                    f.seek(start)
                    data = f.read(stop - start)
                return self._merged(seq, start, data, max_events, self._counts.setdefault(seq, {}))
        return None

    @staticmethod
    def _merged(seq: int, start: int, data: bytes, max_events: int, counts: dict[int, int]) -> SpooledBatch:
        parts: list[bytes] = []
        total = end = 0
        for lo, hi in _records(data):
            body = data[lo + HEADER.size:hi]
            count = counts.get(start + lo)
            if count is None:  # a record a former process wrote
                count = counts[start + lo] = len(orjson.loads(body)["events"])
            if end and (not max_events or total + count > max_events):
                break
            if count:
                parts.append(_inner(body))
            total += count
            end = hi
        return SpooledBatch(seq, start + end, _PREFIX + b",".join(parts) + _SUFFIX, total)

    def ack(self, batch: SpooledBatch) -> None:
        """Record ``batch`` as delivered (fsync'd); delete its segment once fully delivered."""
        self._acks.write(batch.segment, self._ack_path(batch.segment), ACK.pack(batch.end))
        self._acked[batch.segment] = batch.end
        counts = self._counts.get(batch.segment, {})
        for offset in [o for o in counts if o < batch.end]:
            del counts[offset]
        newest = max(self._sizes)
        if batch.end >= self._sizes[batch.segment] and batch.segment != newest:
            self._drop(batch.segment)

    def _recover(self) -> None:
        for path in sorted(self.directory.glob("*.seg")):
            seq = int(path.stem)
            data = path.read_bytes()
            _, intact = read_records(data)
            if intact < len(data):
                with open(path, "r+b") as f:
                    f.truncate(intact)
                    os.fsync(f.fileno())
            self._sizes[seq] = intact
            self._acked[seq] = min(self._read_ack(seq), intact)
        newest = max(self._sizes, default=0)
        for seq in list(self._sizes):
            if seq != newest and self._acked[seq] >= self._sizes[seq]:
                self._drop(seq)
        for path in self.directory.glob("*.ack"):
            if int(path.stem) not in self._sizes:
                path.unlink()

    def _read_ack(self, seq: int) -> int:
        path = self._ack_path(seq)
        if not path.exists():
            return 0
        data = path.read_bytes()
        whole = len(data) - len(data) % ACK.size
        return ACK.unpack_from(data, whole - ACK.size)[0] if whole else 0

    def _drop(self, seq: int) -> None:
        self._segments.forget(seq)
        self._acks.forget(seq)
        self._counts.pop(seq, None)
        self._segment(seq).unlink(missing_ok=True)
        self._ack_path(seq).unlink(missing_ok=True)
        self._sizes.pop(seq, None)
        self._acked.pop(seq, None)

    def _segment(self, seq: int) -> Path:
        return self.directory / f"{seq:020d}.seg"

    def _ack_path(self, seq: int) -> Path:
        return self.directory / f"{seq:020d}.ack"
