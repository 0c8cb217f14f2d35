"""A bounded, crash-safe on-disk spool of event batches for while ingest is unreachable.

Layout of the spool directory (mode 0700, one client at a time, held by an flock on ``LOCK``):

- ``<seq>.seg``: append-only segment of records, ``seq`` a 20-digit counter. A record is
  ``b"STS1"``, the body length and the CRC-32 of the body (big-endian uint32 each), then the body:
  ``{"events": [...]}`` as JSON. Every append is fsync'd before :meth:`Spool.append` returns.
- ``<seq>.ack``: append-only big-endian uint64 end offsets of the records already delivered.

A crash can leave a torn record at the end of a segment or a torn offset at the end of an ack
file; opening the spool drops such tails. A crash between delivery and the ack write makes the
batch go out again after restart, with the same event ids, which ingest and the ledger tolerate.
Segments are deleted once every record in them is acknowledged.
"""

from __future__ import annotations

import fcntl
import os
import struct
import zlib
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


@dataclass(frozen=True, slots=True)
class SpooledBatch:
    segment: int
    end: int
    events: list[dict[str, Any]]


def encode_record(events: list[dict[str, Any]]) -> bytes:
    body = orjson.dumps({"events": events})
    return HEADER.pack(MAGIC, len(body), zlib.crc32(body)) + body


def read_records(data: bytes) -> tuple[list[tuple[int, int]], int]:
    """The (start, end) offsets of the intact records of a segment, and where the intact part ends."""
    spans: list[tuple[int, int]] = []
    pos = 0
    while pos + HEADER.size <= len(data):
        magic, length, crc = HEADER.unpack_from(data, pos)
        end = pos + HEADER.size + length
        if magic != MAGIC or end > len(data) or zlib.crc32(data[pos + HEADER.size:end]) != crc:
            break
        spans.append((pos, end))
        pos = end
    return spans, pos


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _append(path: Path, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)
        f.flush()
        os.fdatasync(f.fileno())  # an append: the data and the new size, without the timestamps


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
        self._recover()

    def close(self) -> None:
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
            _append(self._segment(seq), b"")
            _fsync_dir(self.directory)
        _append(self._segment(seq), record)
        self._sizes[seq] += len(record)

    def peek(self, max_events: int = 0) -> SpooledBatch | None:
        """The oldest batch not yet acknowledged, or None. With ``max_events``, the records that
        follow it in the same segment join it while the batch stays within ``max_events`` events
        (acknowledging the batch acknowledges them all)."""
        for seq in sorted(self._sizes):
            start = self._acked.get(seq, 0)
            if start < self._sizes[seq]:
                with open(self._segment(seq), "rb") as f:
                    f.seek(start)
                    if max_events:
                        return self._merged(seq, start, f.read(self._sizes[seq] - start), max_events)
                    _, length, _ = HEADER.unpack(f.read(HEADER.size))
                    body = f.read(length)
                return SpooledBatch(seq, start + HEADER.size + length, orjson.loads(body)["events"])
        return None

    @staticmethod
    def _merged(seq: int, start: int, data: bytes, max_events: int) -> SpooledBatch:
        spans, _ = read_records(data)
        events: list[dict[str, Any]] = []
        end = 0
        for lo, hi in spans:
            more = orjson.loads(data[lo + HEADER.size:hi])["events"]
            if events and len(events) + len(more) > max_events:
                break
            events.extend(more)
            end = hi
        return SpooledBatch(seq, start + end, events)

    def ack(self, batch: SpooledBatch) -> None:
        """Record ``batch`` as delivered (fsync'd); delete its segment once fully delivered."""
        _append(self._ack_path(batch.segment), ACK.pack(batch.end))
        self._acked[batch.segment] = batch.end
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
        self._segment(seq).unlink(missing_ok=True)
        self._ack_path(seq).unlink(missing_ok=True)
        self._sizes.pop(seq, None)
        self._acked.pop(seq, None)

    def _segment(self, seq: int) -> Path:
        return self.directory / f"{seq:020d}.seg"

    def _ack_path(self, seq: int) -> Path:
        return self.directory / f"{seq:020d}.ack"
