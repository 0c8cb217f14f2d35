"""send_durable: events are on disk (fsync'd) when it returns, concurrent callers share one write,
and the flusher delivers them from the spool in merged batches."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import httpx
import orjson
import pytest

from sealtrail.sdk.client import SealtrailClient
from sealtrail.sdk.spool import HEADER, Spool, read_records

TOKEN = "st_0123456789abcdef_SECRETSECRETSECRETSECRET"


def _records(spool: Path) -> list[list[str]]:
    """The event ids of each record in the spool's segments, read from the files themselves."""
    found: list[list[str]] = []
    for seg in sorted(spool.glob("*.seg")):
        data = seg.read_bytes()
        spans, _ = read_records(data)
        found.extend([e["event_id"] for e in orjson.loads(data[lo + HEADER.size:hi])["events"]] for lo, hi in spans)
    return found


def _ingest(posted: list[list[str]]) -> httpx.MockTransport:
    def answer(request: httpx.Request) -> httpx.Response:
        events = orjson.loads(request.content)["events"]
        posted.append([e["event_id"] for e in events])
        return httpx.Response(202, json={"accepted": [{"event_id": e["event_id"], "log": "default",
                                                       "receipt": "r"} for e in events]})
    return httpx.MockTransport(answer)


async def test_concurrent_callers_share_writes_and_each_returns_on_disk(tmp_path: Path) -> None:
    """50 concurrent callers: each event is in a spool segment when its call returns, in fewer than
    50 records (group commit), and nothing was posted yet (the flusher has not run)."""
    posted: list[list[str]] = []
    client = SealtrailClient("http://ingest", TOKEN, spool_dir=tmp_path / "spool", flush_interval_s=60,
                             transport=_ingest(posted))
    client.start()
    on_disk: dict[str, bool] = {}

    async def one(i: int) -> None:
        await client.send_durable([{"event_id": f"e{i}"}])
        on_disk[f"e{i}"] = any(f"e{i}" in r for r in _records(tmp_path / "spool"))

    await asyncio.gather(*(one(i) for i in range(50)))
    records = _records(tmp_path / "spool")
    assert all(on_disk.values()) and len(on_disk) == 50
    assert sorted(e for r in records for e in r) == sorted(f"e{i}" for i in range(50))
    assert len(records) < 50
    assert posted == [] and not client.outage
    await client.close()
    assert sorted(e for batch in posted for e in batch) == sorted(f"e{i}" for i in range(50))
    assert len(posted) <= len(records)


async def test_a_durable_event_left_by_a_dead_client_is_delivered_by_the_next(tmp_path: Path) -> None:
    """Events written durably and never delivered (the process ended without close) go out from the
    spool when the next client on the directory runs."""
    first = SealtrailClient("http://ingest", TOKEN, spool_dir=tmp_path / "spool", flush_interval_s=60,
                            transport=_ingest([]))
    await first.send_durable([{"event_id": "a"}, {"event_id": "b"}])
    first._spool.close()  # type: ignore[union-attr]  # what the process's death does to its lock
    posted: list[list[str]] = []
    async with SealtrailClient("http://ingest", TOKEN, spool_dir=tmp_path / "spool", transport=_ingest(posted)):
        pass
    assert posted == [["a", "b"]]


async def test_send_durable_needs_a_spool() -> None:
    """Without a spool there is nowhere durable to write: a clear error."""
    client = SealtrailClient("http://ingest", TOKEN, transport=_ingest([]))
    with pytest.raises(ValueError, match="needs a spool"):
        await client.send_durable([{"event_id": "x"}])


def test_peek_merges_records_up_to_max_events(tmp_path: Path) -> None:
    """peek(max_events) joins the following records of the segment while the batch stays within the
    limit; acknowledging it acknowledges them all; plain peek still gives one record."""
    spool = Spool(tmp_path / "s", max_bytes=1 << 20)
    for i in range(5):
        spool.append([{"event_id": f"{i}a"}, {"event_id": f"{i}b"}])
    one = spool.peek()
    assert one is not None and [e["event_id"] for e in one.events] == ["0a", "0b"]
    merged = spool.peek(max_events=5)
    assert merged is not None and [e["event_id"] for e in merged.events] == ["0a", "0b", "1a", "1b"]
    spool.ack(merged)
    rest = spool.peek(max_events=100)
    assert rest is not None and [e["event_id"] for e in rest.events] == ["2a", "2b", "3a", "3b", "4a", "4b"]
    spool.ack(rest)
    assert spool.peek(max_events=100) is None and not spool
    spool.close()


def test_a_merged_batch_is_the_records_bytes_spliced(tmp_path: Path) -> None:
    """A peeked batch's body is the JSON ingest receives, built from the records' bytes: the same
    events, in order, also for records a former process wrote (their counts read from the file),
    and empty records add nothing."""
    first = Spool(tmp_path / "s", max_bytes=1 << 20)
    first.append([{"event_id": "a", "payload": {"text": "é,]}"}}])
    first.append([])
    first.close()
    spool = Spool(tmp_path / "s", max_bytes=1 << 20)
    spool.append([{"event_id": "b"}, {"event_id": "c"}])
    batch = spool.peek(max_events=10)
    assert batch is not None and batch.count == 3
    assert orjson.loads(batch.body) == {"events": [{"event_id": "a", "payload": {"text": "é,]}"}},
                                                   {"event_id": "b"}, {"event_id": "c"}]}
    spool.close()


async def test_the_spool_write_leaves_the_loop_thread_when_the_disk_is_slow(tmp_path: Path) -> None:
    """With a fast disk the group's write and fdatasync run in the event loop's thread; once the
    spool's average fdatasync is slow, in a worker thread (the loop keeps serving meanwhile)."""
    client = SealtrailClient("http://ingest", TOKEN, spool_dir=tmp_path / "spool", flush_interval_s=60,
                             transport=_ingest([]))
    spool = client._spool
    assert spool is not None
    threads: list[int] = []
    real = spool.append

    def append(events: list[dict[str, object]]) -> None:
        threads.append(threading.get_ident())
        real(events)

    spool.append = append  # type: ignore[method-assign]  # to see where the real write runs
    await client.send_durable([{"event_id": "fast"}])
    assert spool.sync_s > 0
    spool.sync_s = 0.5  # what a disk whose fdatasync takes half a second leaves
    await client.send_durable([{"event_id": "slow"}])
    assert threads[0] == threading.get_ident() and threads[1] != threading.get_ident()
    assert [e for r in _records(tmp_path / "spool") for e in r] == ["fast", "slow"]
    await client.close()


async def test_a_drain_delivers_what_was_spooled_when_it_began(tmp_path: Path) -> None:
    """Events spooled while a drain's post is under way wait for the next round, so a steady stream
    goes out in batches rather than one small post after another; nothing is left behind."""
    posted: list[list[str]] = []
    client: SealtrailClient | None = None

    async def answer(request: httpx.Request) -> httpx.Response:
        events = orjson.loads(request.content)["events"]
        posted.append([e["event_id"] for e in events])
        if len(posted) == 1 and client is not None:
            await client.send_durable([{"event_id": "late"}])
        return httpx.Response(202, json={"accepted": [{"event_id": e["event_id"], "log": "default",
                                                       "receipt": "r"} for e in events]})

    client = SealtrailClient("http://ingest", TOKEN, spool_dir=tmp_path / "spool", flush_interval_s=60,
                             transport=httpx.MockTransport(answer))
    await client.send_durable([{"event_id": "a"}, {"event_id": "b"}])
    await client.flush()
    assert posted == [["a", "b"]] and client.spooled
    await client.flush()
    assert posted == [["a", "b"], ["late"]] and not client.spooled
    await client.close()
