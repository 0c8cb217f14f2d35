"""The local log's files: CRC-checked record frames in append-only segment files, per partition.

Frame: ``length`` (u32, big-endian, bytes of body) | ``crc`` (u32, CRC-32 of the four length
bytes and the body) | body; body: ``key length`` (i32, -1 for no key) | key | ``value length``
(i32, -1 for no value) | value. A segment file is named after the offset of its first record
(``00000000000000000000.log``); the n-th frame of a segment has offset ``base + n``.

Only the last segment of a partition is ever written, and every append is fsync'd before it is
acknowledged, so a crash can only leave an incomplete or unchecksummed frame at the very end of
the last segment. :meth:`PartitionFiles.open` cuts that tail off. Anywhere else a bad frame is
corruption and raises :class:`~sealtrail.errors.CorruptLogError`; it is never skipped or misread.

Everything here blocks; :mod:`sealtrail.infra.locallog` runs it in threads.
"""

from __future__ import annotations

import bisect
import logging
import os
import struct
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from sealtrail.errors import CorruptLogError, InvalidInputError, UnavailableError

log = logging.getLogger("sealtrail.locallog")

MAX_RECORD_BYTES = 16 * 1024 * 1024
INDEX_INTERVAL = 256  # one (offset, position) index point per this many records
_HEAD = struct.Struct(">II")
_LEN = struct.Struct(">i")
_SUFFIX = ".log"

Record = tuple[bytes | None, bytes | None]


def encode_frame(key: bytes | None, value: bytes | None) -> bytes:
    body = b"".join(_LEN.pack(-1) if part is None else _LEN.pack(len(part)) + part for part in (key, value))
    if len(body) > MAX_RECORD_BYTES:
        raise InvalidInputError(f"a local-log record is limited to {MAX_RECORD_BYTES} bytes")
    length = struct.pack(">I", len(body))
    return length + struct.pack(">I", zlib.crc32(body, zlib.crc32(length))) + body


def _decode_body(body: bytes) -> Record | None:
    parts: list[bytes | None] = []
    pos = 0
    for _ in range(2):
        if pos + 4 > len(body):
            return None
        (n,) = _LEN.unpack_from(body, pos)
        pos += 4
        if n == -1:
            parts.append(None)
        elif 0 <= n <= len(body) - pos:
            parts.append(body[pos:pos + n])
            pos += n
        else:
            return None
    return (parts[0], parts[1]) if pos == len(body) else None


def _frames(f: BinaryIO, pos: int, end: int) -> Iterator[tuple[int, Record]]:
    """Yield (position after, record) for the valid frames from ``pos``; stop at the first bad one."""
    f.seek(pos)
    while pos + _HEAD.size <= end:
        head = f.read(_HEAD.size)
        if len(head) != _HEAD.size:
            return
        length, crc = _HEAD.unpack(head)
        if length > MAX_RECORD_BYTES or pos + _HEAD.size + length > end:
            return
        body = f.read(length)
        if len(body) != length or zlib.crc32(body, zlib.crc32(struct.pack(">I", length))) != crc:
            return
        record = _decode_body(body)
        if record is None:
            return
        pos += _HEAD.size + length
        yield pos, record


@dataclass
class Segment:
    """One segment file: its first offset, record count, byte size and sparse index."""

    base: int
    path: Path
    count: int = 0
    size: int = 0
    index: list[tuple[int, int]] = field(default_factory=list)  # (offset, position), ascending
    indexed: bool = False
    cursor: tuple[int, int] | None = None
    """(offset, position) where the last read stopped: a reader that goes on from there starts at
    that frame instead of at the index point before it (up to INDEX_INTERVAL frames checked and
    decoded again on every read). Frames never move, so any pair once recorded stays valid."""

    def note(self, offset: int, position: int) -> None:
        if (offset - self.base) % INDEX_INTERVAL == 0:
            self.index.append((offset, position))

    def scan(self) -> None:
        """Index every frame, checking each; a sealed segment must hold exactly ``count``."""
        self.index.clear()
        offset, pos = self.base, 0
        with open(self.path, "rb") as f:
            for after, _ in _frames(f, 0, self.size):
                self.note(offset, pos)
                offset, pos = offset + 1, after
        if offset - self.base != self.count or pos != self.size:
            raise CorruptLogError(f"segment {self.path} fails its checksums at byte {pos}")
        self.indexed = True


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class PartitionFiles:
    """The segments of one topic-partition; appended by one thread at a time."""

    def __init__(self, directory: Path, *, segment_bytes: int) -> None:
        self.directory = directory
        self._segment_bytes = segment_bytes
        self.segments: list[Segment] = []
        self.end = 0  # offset after the last durable record
        self.truncated_bytes = 0
        self._fd = -1
        self._broken = False

    @property
    def start(self) -> int:
        return self.segments[0].base

    def open(self) -> None:
        """Find the segments, cut a torn tail off the last one, and open it for appending."""
        self.directory.mkdir(parents=True, exist_ok=True)
        bases = sorted(int(p.name[:-len(_SUFFIX)]) for p in self.directory.glob(f"*{_SUFFIX}"))
        if not bases:
            self._create(0)
            return
        for base, following in zip(bases, [*bases[1:], None], strict=True):
            seg = Segment(base, self._path(base))
            seg.size = seg.path.stat().st_size
            seg.count = following - base if following is not None else 0
            self.segments.append(seg)
        self._recover(self.segments[-1])
        self._fd = os.open(self.segments[-1].path, os.O_WRONLY | os.O_APPEND)
        self.end = self.segments[-1].base + self.segments[-1].count

    def _recover(self, seg: Segment) -> None:
        count, pos = 0, 0
        with open(seg.path, "rb") as f:
            for after, _ in _frames(f, 0, seg.size):
                seg.note(seg.base + count, pos)
                count, pos = count + 1, after
        if pos < seg.size:
            self.truncated_bytes = seg.size - pos
            log.warning("local log %s: cut a torn tail of %d bytes after offset %d",
                        seg.path, seg.size - pos, seg.base + count - 1)
            with open(seg.path, "r+b") as f:
                f.truncate(pos)
                os.fsync(f.fileno())
        seg.count, seg.size, seg.indexed = count, pos, True

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _path(self, base: int) -> Path:
        return self.directory / f"{base:020d}{_SUFFIX}"

    def _create(self, base: int) -> None:
        path = self._path(base)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        os.fsync(fd)
        _fsync_dir(self.directory)
        if self._fd >= 0:
            os.close(self._fd)
        self._fd = fd
        self.segments.append(Segment(base, path, indexed=True))

    def append(self, records: Sequence[Record]) -> int:
        """Write and fsync ``records``; return the new end offset. Durable when it returns.

        A segment is sealed (and a new one started) before a frame that would take it past
        ``segment_bytes``; a frame larger than that gets a segment of its own.
        """
        if self._broken:
            raise UnavailableError("the local log failed a write; reopen it")
        frames = [encode_frame(k, v) for k, v in records]
        i = 0
        while i < len(frames):
            seg, j, size = self.segments[-1], i, self.segments[-1].size
            while j < len(frames) and (seg.count + j - i == 0 or size + len(frames[j]) <= self._segment_bytes):
                size, j = size + len(frames[j]), j + 1
            if j == i:
                self._create(self.end)
                continue
            self._write(seg, frames[i:j])
            i = j
        return self.end

    def _write(self, seg: Segment, frames: list[bytes]) -> None:
        data = b"".join(frames)
        try:
            written = 0
            while written < len(data):
                written += os.write(self._fd, data[written:])
            os.fsync(self._fd)
        except OSError as e:
            self._broken = True  # after a failed fsync the file's state is unknown
            raise UnavailableError(f"local log write failed: {type(e).__name__}") from e
        pos = seg.size
        for i, frame in enumerate(frames):
            seg.note(self.end + i, pos)
            pos += len(frame)
        seg.size, seg.count = pos, seg.count + len(frames)
        self.end += len(frames)

    def drop_before(self, offset: int, *, written_before: float) -> int:
        """Delete the oldest segments whose records all lie below ``offset`` and whose file was
        last written before ``written_before`` (a ``time.time()``); return the bytes freed.

        When the segment being appended to qualifies too, it is sealed first: an empty segment
        starting at :attr:`end` is created (and the directory fsync'd) before any file goes, so
        the offsets go on from where they were after a crash at any instant. Call it with
        appends excluded; readers that still hold the previous segment list may find a file gone
        (:class:`FileNotFoundError`).
        """
        last = self.segments[-1]
        if (last.count and last.base + last.count <= offset and not self._broken
                and last.path.stat().st_mtime < written_before):
            self._create(self.end)
        segments = self.segments
        n = 0
        while n < len(segments) - 1:
            seg = segments[n]
            if seg.base + seg.count > offset or seg.path.stat().st_mtime >= written_before:
                break
            n += 1
        if n == 0:
            return 0
        self.segments = segments[n:]  # readers see the new start before any file goes
        for seg in segments[:n]:
            seg.path.unlink(missing_ok=True)
        _fsync_dir(self.directory)
        return sum(seg.size for seg in segments[:n])

    def read(self, offset: int, end: int, max_records: int, max_bytes: int) -> list[tuple[int, Record]]:
        """Records from ``offset`` (from the first stored one if it is older; at least one if any)
        below ``end``, within the limits."""
        out: list[tuple[int, Record]] = []
        size = 0
        segments = self.segments  # one list throughout, whatever drop_before does meanwhile
        i = max(0, bisect.bisect_right([s.base for s in segments], offset) - 1)
        while i < len(segments) and offset < end and len(out) < max_records and size < max_bytes:
            seg = segments[i]
            if not seg.indexed:
                seg.scan()
            got = self._read_segment(seg, offset, end, max_records - len(out), max_bytes - size)
            out += got
            size += sum(len(k or b"") + len(v or b"") for _, (k, v) in got)
            offset = out[-1][0] + 1 if out else offset
            i += 1
        return out

    def _read_segment(self, seg: Segment, offset: int, end: int, max_records: int,
                      max_bytes: int) -> list[tuple[int, Record]]:
        j = bisect.bisect_right(seg.index, (offset, 2**62)) - 1
        at, pos = seg.index[j] if j >= 0 else (seg.base, 0)
        cursor = seg.cursor
        if cursor is not None and at <= cursor[0] <= offset:
            at, pos = cursor
        out: list[tuple[int, Record]] = []
        size = 0
        limit = min(end, seg.base + seg.count)
        with open(seg.path, "rb") as f:
            for after, record in _frames(f, pos, seg.size):
                if at >= limit or len(out) >= max_records or (out and size >= max_bytes):
                    seg.cursor = (at, pos)
                    return out
                if at >= offset:
                    out.append((at, record))
                    size += len(record[0] or b"") + len(record[1] or b"")
                at, pos = at + 1, after
        if at < limit:
            raise CorruptLogError(f"segment {seg.path} fails its checksums at byte {pos}")
        seg.cursor = (at, pos)
        return out
