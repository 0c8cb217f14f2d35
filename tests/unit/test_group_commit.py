"""Ingest's group commit over the real local log: concurrent batches share one publish (one fsync)
and one receipt signature per tenant, each request gets exactly its own answer, and a failure
reaches exactly the batches it concerns."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sealtrail.core.keystore import MemoryKeyStore, period_of
from sealtrail.core.note import Ed25519Signer, parse_note
from sealtrail.core.receipt import CachedEd25519Signer, parse_receipt_proof, verify_receipt
from sealtrail.core.record import decode_record
from sealtrail.errors import PeriodExpiredError, UnavailableError
from sealtrail.infra.auth import Principal, Role
from sealtrail.infra.bus import TopicSpec
from sealtrail.infra.locallog import LocalLog
from sealtrail.sdk import tool_call
from services.ingest.groupcommit import GroupCommitter
from services.ingest.sealer import PreparedBatch, Sealer

TOPIC = "sealed"
SIGNER = Ed25519Signer.generate("ingest.example/receipts")


class _IndexKeys:
    async def get(self, tenant: str) -> bytes:
        return b"\x07" * 32


def principal(tenant: str) -> Principal:
    return Principal(key_id="k" * 16, tenant_id=tenant, role=Role.GATEWAY, label="gw-1")


def event(n: int) -> dict[str, object]:
    return tool_call(agent_id="a", server_id="s", tool_name="t", decision="allow", status="ok",
                     payload={"n": n}, subjects=[f"user:{n % 5}@example.com"])


class CountedLog:
    """The real local log, publishing to one topic; counts publishes and can hold each one open."""

    def __init__(self, log: LocalLog) -> None:
        self.log = log
        self.publishes: list[int] = []
        self.hold = 0.0

    async def publish(self, records: list[tuple[bytes, bytes]]) -> None:
        self.publishes.append(len(records))
        if self.hold:
            await asyncio.sleep(self.hold)
        await self.log.publish(TOPIC, records)

    async def logged(self) -> list[tuple[bytes, str]]:
        """(key, event id) of every record in the topic, partition by partition."""
        out = []
        for p in range(self.log.partitions(TOPIC)):
            out += [(r.key or b"", decode_record(r.value or b"").event_id) for r in await self.log.read(TOPIC, p, 0)]
        return out


@pytest.fixture
async def log(tmp_path: Path) -> AsyncIterator[CountedLog]:
    local = LocalLog(root=tmp_path / "log")
    await local.start()
    await local.ensure_topics([TopicSpec(TOPIC, partitions=3)])
    try:
        yield CountedLog(local)
    finally:
        await local.stop()


def committer(publish: CountedLog, keystore: MemoryKeyStore | None = None, *,
              max_group_events: int = 5000) -> GroupCommitter:
    sealer = Sealer(keystore=keystore or MemoryKeyStore(), index_keys=_IndexKeys(),  # type: ignore[arg-type]
                    signer=CachedEd25519Signer(SIGNER), clock=lambda: datetime.now(UTC))
    return GroupCommitter(sealer=sealer, publish=publish.publish, max_group_events=max_group_events)


def check_receipts(batch: PreparedBatch, tenant: str) -> set[str]:
    """Every receipt verifies and names its record; the notes that signed them."""
    notes = set()
    for (key, value), accepted in zip(batch.records, batch.accepted, strict=True):
        record = decode_record(value)
        promise = verify_receipt(accepted.receipt, [SIGNER.verifier()])
        assert (key, promise.log, promise.event_id, promise.digest) == (
            tenant.encode(), tenant, record.event_id, record.header["payload_digest"])
        notes.add(parse_receipt_proof(accepted.receipt).note)
    return notes


async def test_concurrent_single_event_batches_share_one_publish_and_one_signature_per_tenant(
        log: CountedLog) -> None:
    """64 one-event batches of one tenant and 8 of another, submitted at once: one publish holds all
    72 records, each tenant's receipts share one signed note with one signature, every answer
    holds exactly its own event, and the log holds each event once."""
    gc = committer(log)
    sent = [("acme", event(i)) for i in range(64)] + [("beta", event(i)) for i in range(8)]
    answers = await asyncio.gather(*(gc.submit(principal(t), [e]) for t, e in sent))
    await gc.aclose()
    assert log.publishes == [72]
    notes: dict[str, set[str]] = {"acme": set(), "beta": set()}
    for (tenant, e), answer in zip(sent, answers, strict=True):
        assert [a.event_id for a in answer.accepted] == [e["event_id"]] and not answer.rejected
        notes[tenant] |= check_receipts(answer, tenant)
    for tenant_notes in notes.values():
        assert len(tenant_notes) == 1 and len(parse_note(next(iter(tenant_notes))).signatures) == 1
    logged = await log.logged()
    assert sorted(eid for _, eid in logged) == sorted(str(e["event_id"]) for _, e in sent)
    times = {decode_record(v).header["received_at"] for a in answers for _, v in a.records}
    assert len(times) == 1  # one receive time for the group, the receipts' accepted time


async def test_batches_sent_during_a_publish_go_together_in_the_next_one(log: CountedLog) -> None:
    """While one group is being published, the batches that arrive wait and then share the next
    publish, logged after the first group's records (one publish at a time keeps a key's order)."""
    gc = committer(log)
    log.hold = 0.2
    first = asyncio.create_task(gc.submit(principal("acme"), [event(0)]))
    await asyncio.sleep(0.05)  # the first group is being published now
    later = [asyncio.create_task(gc.submit(principal("acme"), [event(i)])) for i in range(1, 11)]
    await asyncio.gather(first, *later)
    await gc.aclose()
    assert log.publishes == [1, 10]
    logged = [eid for _, eid in await log.logged()]
    assert logged[0] == first.result().accepted[0].event_id
    assert sorted(logged[1:]) == sorted(t.result().accepted[0].event_id for t in later)


async def test_a_group_is_bounded_by_its_event_count(log: CountedLog) -> None:
    """Batches beyond max_group_events wait for the next group; a batch larger than the bound
    still goes, alone."""
    gc = committer(log, max_group_events=10)
    sizes = [4, 4, 4, 12, 1]
    await asyncio.gather(*(gc.submit(principal("acme"), [event(i) for i in range(n)]) for n in sizes))
    await gc.aclose()
    assert log.publishes == [8, 4, 12, 1]


async def test_a_failed_publish_fails_every_batch_of_its_group_and_only_those(tmp_path: Path) -> None:
    """A publish that cannot be confirmed (the local log is not open) answers every batch of its
    group with the error and logs nothing of theirs; the next group publishes normally."""
    local = LocalLog(root=tmp_path / "log")
    counted = CountedLog(local)
    gc = committer(counted)
    failed = await asyncio.gather(*(gc.submit(principal("acme"), [event(i)]) for i in range(5)),
                                  return_exceptions=True)
    assert all(isinstance(f, UnavailableError) for f in failed), failed
    await local.start()
    await local.ensure_topics([TopicSpec(TOPIC, partitions=3)])
    try:
        ok = await asyncio.gather(*(gc.submit(principal("acme"), [event(i)]) for i in range(5, 8)))
        await gc.aclose()
        assert counted.publishes == [5, 3]
        assert sorted(eid for _, eid in await counted.logged()) == sorted(b.accepted[0].event_id for b in ok)
    finally:
        await local.stop()


async def test_a_batch_that_cannot_be_sealed_fails_alone(log: CountedLog) -> None:
    """A tenant whose period key expired gets PeriodExpiredError for its batch; the batches of the
    same group from another tenant are sealed, published and answered; a batch whose events are all
    rejected is answered with its rejections and publishes nothing."""
    keys = MemoryKeyStore()
    now = datetime.now(UTC)
    await keys.get_or_create_period_key("gone", period_of(now))
    await keys.expire_period("gone", period_of(now))
    gc = committer(log, keys)
    results = await asyncio.gather(
        gc.submit(principal("gone"), [event(0)]), gc.submit(principal("acme"), [event(1)]),
        gc.submit(principal("acme"), [{"type": "tool_call"}]), return_exceptions=True)
    await gc.aclose()
    expired, ok, rejected = results
    assert isinstance(expired, PeriodExpiredError)
    assert isinstance(ok, PreparedBatch) and len(ok.accepted) == 1
    check_receipts(ok, "acme")
    assert isinstance(rejected, PreparedBatch) and not rejected.accepted and len(rejected.rejected) == 1
    assert [eid for _, eid in await log.logged()] == [ok.accepted[0].event_id]


async def test_after_close_a_batch_is_refused_with_503(log: CountedLog) -> None:
    """Closing publishes what was submitted; a batch submitted after it is refused (503, retry)."""
    gc = committer(log)
    await gc.submit(principal("acme"), [event(0)])
    await gc.aclose()
    with pytest.raises(UnavailableError):
        await gc.submit(principal("acme"), [event(1)])
    assert log.publishes == [1]
