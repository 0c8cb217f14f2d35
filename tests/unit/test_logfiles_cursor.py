"""A partition's reads go on from where the last one stopped (the segment's cursor) and give the
same records as reads that start from the sparse index, whatever the offsets and limits."""

from __future__ import annotations

import random
from pathlib import Path

from sealtrail.infra.logfiles import INDEX_INTERVAL, PartitionFiles

RECORDS = 3 * INDEX_INTERVAL + 17


def _files(tmp_path: Path, segment_bytes: int) -> PartitionFiles:
    files = PartitionFiles(tmp_path / "p0", segment_bytes=segment_bytes)
    files.open()
    for start in range(0, RECORDS, 50):
        files.append([(b"k", b"v%05d" % i) for i in range(start, min(start + 50, RECORDS))])
    return files


def _fresh_reader(files: PartitionFiles, offset: int, end: int, max_records: int) -> list[tuple[int, bytes]]:
    for seg in files.segments:
        seg.cursor = None
    return [(at, value or b"") for at, (_, value) in files.read(offset, end, max_records, 1 << 30)]


def test_reads_that_go_on_from_the_last_one_start_at_its_cursor(tmp_path: Path) -> None:
    files = _files(tmp_path, 64 * 1024 * 1024)
    offset, seen = 0, []
    while offset < RECORDS:
        got = files.read(offset, RECORDS, 7, 1 << 30)
        seen += [value for _, (_, value) in got]
        offset = got[-1][0] + 1
        seg = files.segments[0]
        assert seg.cursor is not None and seg.cursor[0] == min(offset, RECORDS)
    assert seen == [b"v%05d" % i for i in range(RECORDS)]
    files.close()


def test_reads_anywhere_after_others_match_reads_from_the_index(tmp_path: Path) -> None:
    files = _files(tmp_path, 4096)  # many segments: reads cross their boundaries
    assert len(files.segments) > 3
    rng = random.Random(7)
    for _ in range(300):
        offset = rng.randrange(RECORDS)
        end = rng.randrange(offset, RECORDS + 1)
        limit = rng.randrange(1, 40)
        got = [(at, value or b"") for at, (_, value) in files.read(offset, end, limit, 1 << 30)]
        assert got == _fresh_reader(files, offset, end, limit)
        assert got == [(i, b"v%05d" % i) for i in range(offset, min(end, offset + limit))] or (offset == end
                                                                                              and got == [])
    files.close()
