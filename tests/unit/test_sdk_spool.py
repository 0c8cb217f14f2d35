"""The SDK's on-disk spool: order, persistence across restarts, torn writes, bounds, exclusivity."""

from __future__ import annotations

from pathlib import Path

import pytest

from sealtrail.sdk.spool import HEADER, Spool, SpoolFullError, encode_record, read_records


def _batch(n: int, tag: str = "e") -> list[dict[str, object]]:
    return [{"event_id": f"{tag}-{i}"} for i in range(n)]


def _drain(spool: Spool) -> list[list[dict[str, object]]]:
    out = []
    while (batch := spool.peek()) is not None:
        out.append(batch.events)
        spool.ack(batch)
    return out


def test_batches_come_back_in_order_and_once(tmp_path: Path) -> None:
    """Appended batches are peeked oldest first; an acked batch never comes back."""
    spool = Spool(tmp_path, max_bytes=1 << 20)
    for tag in "abc":
        spool.append(_batch(3, tag))
    assert bool(spool)
    assert _drain(spool) == [_batch(3, "a"), _batch(3, "b"), _batch(3, "c")]
    assert not spool and spool.peek() is None


def test_survives_a_restart_with_acks(tmp_path: Path) -> None:
    """After the process dies, a new spool on the directory resumes after the last ack."""
    first = Spool(tmp_path, max_bytes=1 << 20)
    for tag in "abc":
        first.append(_batch(2, tag))
    peeked = first.peek()
    assert peeked is not None
    first.ack(peeked)
    first.close()
    assert _drain(Spool(tmp_path, max_bytes=1 << 20)) == [_batch(2, "b"), _batch(2, "c")]


def test_torn_record_and_torn_ack_are_dropped(tmp_path: Path) -> None:
    """A crash mid-append leaves a partial record, mid-ack a partial offset: reopening keeps every
    intact batch, drops the torn record, and treats the torn ack as not written."""
    spool = Spool(tmp_path, max_bytes=1 << 20)
    spool.append(_batch(2, "a"))
    spool.append(_batch(2, "b"))
    first = spool.peek()
    assert first is not None
    spool.ack(first)
    spool.close()
    (segment,) = tmp_path.glob("*.seg")
    (ack,) = tmp_path.glob("*.ack")
    with open(segment, "ab") as f:
        f.write(encode_record(_batch(2, "torn"))[:-5])
    with open(ack, "ab") as f:
        f.write(b"\x00\x00\x00")
    reopened = Spool(tmp_path, max_bytes=1 << 20)
    assert _drain(reopened) == [_batch(2, "b")]
    reopened.append(_batch(1, "c"))
    assert _drain(reopened) == [_batch(1, "c")]


def test_corrupted_bytes_end_the_intact_part(tmp_path: Path) -> None:
    """A record whose CRC does not match ends the readable part of a segment."""
    good, bad = encode_record(_batch(1, "a")), bytearray(encode_record(_batch(1, "b")))
    bad[-2] ^= 0xFF
    spans, intact = read_records(good + bytes(bad))
    assert spans == [(0, len(good))] and intact == len(good)
    assert HEADER.size == 12


def test_bounded_by_max_bytes(tmp_path: Path) -> None:
    """Past max_bytes, append refuses with SpoolFullError and keeps what it had."""
    record = len(encode_record(_batch(10)))
    spool = Spool(tmp_path, max_bytes=2 * record + 1)
    spool.append(_batch(10))
    spool.append(_batch(10))
    with pytest.raises(SpoolFullError):
        spool.append(_batch(10))
    assert len(_drain(spool)) == 2


def test_segments_roll_and_are_deleted_when_delivered(tmp_path: Path) -> None:
    """Small segments roll over; fully delivered ones are removed from disk."""
    spool = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=200)
    for i in range(6):
        spool.append(_batch(3, f"s{i}"))
    assert len(list(tmp_path.glob("*.seg"))) > 2
    assert len(_drain(spool)) == 6
    assert len(list(tmp_path.glob("*.seg"))) == 1 and spool.size_bytes <= 200


def test_one_client_per_directory(tmp_path: Path) -> None:
    """A second spool on a directory in use is refused (an flock guards it)."""
    first = Spool(tmp_path, max_bytes=1000)
    with pytest.raises(RuntimeError):
        Spool(tmp_path, max_bytes=1000)
    first.close()
    Spool(tmp_path, max_bytes=1000).close()
