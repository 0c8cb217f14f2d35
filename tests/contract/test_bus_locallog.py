"""The local log passes the bus contract, and recovers from torn tails without misreading."""

from __future__ import annotations

import asyncio
import struct
import time
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sealtrail.errors import CorruptLogError, InvalidInputError, ServiceStartError, UnavailableError
from sealtrail.infra.bus import BusRecord, TopicSpec
from sealtrail.infra.locallog import LocalLog, partition_for
from sealtrail.infra.logfiles import MAX_RECORD_BYTES, encode_frame
from tests.contract.bus_contract import BusContract


class _LocalHarness:
    def __init__(self, root: Path) -> None:
        self._root = root
        self.publisher = LocalLog(root=root)

    async def read(self, topic: str, partition: int, offset: int, count: int) -> list[BusRecord]:
        got = await self.publisher.read(topic, partition, offset, max_records=count)
        assert len(got) == count, f"only {len(got)} of {count} records came back"
        return got

    async def end_offset(self, topic: str, partition: int) -> int:
        return self.publisher.end_offset(topic, partition)

    async def partitions(self, topic: str) -> int:
        return self.publisher.partitions(topic)

    async def reopen(self) -> None:
        await self.publisher.stop()
        self.publisher = LocalLog(root=self._root)
        await self.publisher.start()


class TestLocalLogBus(BusContract):
    @pytest.fixture
    async def bus(self, tmp_path: Path) -> AsyncIterator[_LocalHarness]:
        harness = _LocalHarness(tmp_path / "log")
        await harness.publisher.start()
        try:
            yield harness
        finally:
            await harness.publisher.stop()


async def _log_with(root: Path, count: int, *, segment_bytes: int = 64 * 1024 * 1024) -> LocalLog:
    log = LocalLog(root=root, segment_bytes=segment_bytes)
    await log.start()
    await log.ensure_topics([TopicSpec("t", 1)])
    await log.publish("t", [(b"k", f"value-{i}".encode()) for i in range(count)])
    return log


def _append(path: Path, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)


def _last_segment(root: Path) -> Path:
    return sorted((root / "t" / "0").glob("*.log"))[-1]


@pytest.mark.parametrize("tail", [
    b"\x00\x00",                                          # a torn length
    struct.pack(">II", 40, 0) + b"\x00" * 12,             # a frame cut short
    struct.pack(">II", 16, 12345) + b"\x00" * 16,         # a whole frame with the wrong checksum
    encode_frame(b"k", b"the unacknowledged record")[:-1],  # a real frame missing its last byte
])
async def test_a_torn_tail_is_cut_off_on_open(tmp_path: Path, tail: bytes) -> None:
    """Whatever a crash leaves after the last acknowledged record is cut off on open; every
    acknowledged record reads back unchanged, and appends continue at the next offset."""
    root = tmp_path / "log"
    log = await _log_with(root, 20)
    before = await log.read("t", 0, 0)
    await log.stop()
    _append(_last_segment(root), tail)
    log = LocalLog(root=root)
    await log.start()
    try:
        assert log.truncated_bytes == len(tail)
        assert await log.read("t", 0, 0) == before
        await log.publish("t", [(b"k", b"after")])
        assert [r.offset for r in await log.read("t", 0, 19)] == [19, 20]
    finally:
        await log.stop()


async def test_corruption_outside_the_tail_is_an_error_not_a_misread(tmp_path: Path) -> None:
    """A flipped byte in a sealed segment makes reads through it fail; no record is skipped or altered."""
    root = tmp_path / "log"
    log = await _log_with(root, 200, segment_bytes=1000)
    await log.stop()
    first = sorted((root / "t" / "0").glob("*.log"))[0]
    data = bytearray(first.read_bytes())
    data[len(data) // 2] ^= 0x01
    first.write_bytes(bytes(data))
    log = LocalLog(root=root, segment_bytes=1000)
    await log.start()
    try:
        with pytest.raises(CorruptLogError):
            await log.read("t", 0, 0)
        assert [r.value for r in await log.read("t", 0, 150, max_records=3)] == [b"value-150", b"value-151",
                                                                                  b"value-152"]
    finally:
        await log.stop()


async def test_segments_roll_and_read_across_boundaries(tmp_path: Path) -> None:
    """Small segments roll over; reads from any offset cross segment boundaries in order, before
    and after a reopen."""
    root = tmp_path / "log"
    log = await _log_with(root, 300, segment_bytes=700)
    assert len(list((root / "t" / "0").glob("*.log"))) > 5
    for reopen in (False, True):
        if reopen:
            await log.stop()
            log = LocalLog(root=root, segment_bytes=700)
            await log.start()
        for start in (0, 31, 255, 299):
            got = await log.read("t", 0, start, max_records=1000)
            assert [r.value for r in got] == [f"value-{i}".encode() for i in range(start, 300)]
    await log.stop()


async def test_drop_before_deletes_only_old_whole_segments_below_the_offset(tmp_path: Path) -> None:
    """Sealed segments wholly below the offset and older than the age go; the segment being
    appended to, a segment that holds the offset, and newer segments stay. Reads from an older
    offset start at the first record kept; appends, the end and a reopen are unaffected."""
    root = tmp_path / "log"
    log = await _log_with(root, 300, segment_bytes=700)
    segments = sorted((root / "t" / "0").glob("*.log"))
    bases = [int(p.stem) for p in segments]
    sizes = {int(p.stem): p.stat().st_size for p in segments}
    assert await log.drop_before("t", 0, 150, max_age_s=3600) == 0  # all younger than an hour
    assert sorted((root / "t" / "0").glob("*.log")) == segments
    freed = await log.drop_before("t", 0, 150, max_age_s=0)
    kept = max(b for b in bases if b <= 150)  # the segment holding offset 150 stays
    assert log.start_offset("t", 0) == kept and freed == sum(n for b, n in sizes.items() if b < kept) > 0
    assert [int(p.stem) for p in sorted((root / "t" / "0").glob("*.log"))] == [b for b in bases if b >= kept]
    got = await log.read("t", 0, 0, max_records=1000)
    assert [r.offset for r in got] == list(range(kept, 300))
    assert await log.drop_before("t", 0, 299, max_age_s=0) > 0  # the active segment holds 299: it stays
    last = bases[-1]
    assert log.start_offset("t", 0) == last and log.end_offset("t", 0) == 300
    await log.publish("t", [(b"k", b"after")])
    await log.stop()
    log = LocalLog(root=root, segment_bytes=700)
    await log.start()
    assert (log.start_offset("t", 0), log.end_offset("t", 0)) == (last, 301)
    assert [r.value for r in await log.read("t", 0, 0)][-1] == b"after"
    await log.stop()


async def test_a_wholly_consumed_active_segment_is_sealed_and_dropped(tmp_path: Path) -> None:
    """When every record is below the offset, the active segment goes too: an empty segment
    at the end takes its place first, so the offsets go on after appends and a reopen, and a
    crash between the two steps (both files left) reopens at the same end."""
    root = tmp_path / "log"
    log = await _log_with(root, 300, segment_bytes=700)
    assert await log.drop_before("t", 0, 300, max_age_s=0) > 0
    assert (log.start_offset("t", 0), log.end_offset("t", 0)) == (300, 300)
    assert [p.stem for p in (root / "t" / "0").glob("*.log")] == [f"{300:020d}"]
    assert await log.read("t", 0, 0) == []
    assert await log.drop_before("t", 0, 300, max_age_s=0) == 0  # nothing left to seal
    await log.publish("t", [(b"k", b"after")])
    assert [(r.offset, r.value) for r in await log.read("t", 0, 0)] == [(300, b"after")]
    await log.stop()
    (root / "t" / "0" / f"{299:020d}.log").write_bytes(encode_frame(b"k", b"left behind"))
    log = LocalLog(root=root, segment_bytes=700)
    await log.start()
    assert (log.start_offset("t", 0), log.end_offset("t", 0)) == (299, 301)
    await log.stop()


def test_partitioning_is_a_stable_hash_of_the_key() -> None:
    """The partition of a key is CRC-32(key) mod partitions: the same in every process and release."""
    assert [partition_for(k, 12) for k in (b"acme", b"beta", b"", b"acme/shard-1")] == [
        zlib.crc32(k) % 12 for k in (b"acme", b"beta", b"", b"acme/shard-1")]
    assert partition_for(b"acme", 12) == 2


async def test_a_waiting_consumer_wakes_at_once(tmp_path: Path) -> None:
    """A consumer waiting on changed() wakes as soon as a record is published, not at a poll."""
    log = await _log_with(tmp_path / "log", 0)
    try:
        event = log.changed("t")
        waiter = asyncio.create_task(event.wait())
        await asyncio.sleep(0.05)
        assert not waiter.done()
        started = time.monotonic()
        await log.publish("t", [(b"k", b"v")])
        await asyncio.wait_for(waiter, timeout=1)
        assert time.monotonic() - started < 0.5
    finally:
        await log.stop()


async def test_misuse_is_refused(tmp_path: Path) -> None:
    """Unknown topics, oversized records and a second opener of the same directory are refused."""
    root = tmp_path / "log"
    log = await _log_with(root, 1)
    try:
        with pytest.raises(UnavailableError):
            await log.publish("nope", [(b"k", b"v")])
        with pytest.raises(InvalidInputError):
            await log.publish("t", [(b"k", b"x" * (MAX_RECORD_BYTES + 1))])
        with pytest.raises(ServiceStartError):
            await LocalLog(root=root).start()
        assert log.end_offset("t", 0) == 1
    finally:
        await log.stop()
