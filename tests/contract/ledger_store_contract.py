"""The ledger-store contract, run against every adapter (PostgreSQL and SQLite).

Subclass :class:`LedgerStoreContract` and override the ``backend`` fixture with a fresh, migrated
database; nothing else.
"""

from __future__ import annotations

import uuid

import pytest

from sealtrail.core.record import SealedRecord
from sealtrail.errors import ConcurrentWriteError
from services.ledger.ports import PartitionCommit
from services.ledger.sequencer import LogHead, SequencedBatch, sequence
from tests.support.backends import LedgerBackend
from tests.support.ledger import sealed


def _empty(log_id: str) -> LogHead:
    return LogHead.empty(log_id=log_id, tenant_id=log_id, origin=f"test/{log_id}")


def _work(partition: int, start: int | None, end: int, batches: list[SequencedBatch],
          new: list[LogHead], *, group: str = "g") -> PartitionCommit:
    return PartitionCommit(group, "t", partition, start, end, batches, new)


def _ids(records: list[SealedRecord]) -> list[uuid.UUID]:
    return [uuid.UUID(r.event_id) for r in records]


class LedgerStoreContract:
    """What every :class:`~services.ledger.ports.LedgerStore` adapter guarantees."""

    @pytest.fixture
    def backend(self) -> LedgerBackend:
        raise NotImplementedError("an adapter's test class overrides the backend fixture")

    async def _first_batch(self, b: LedgerBackend, n: int = 5) -> tuple[SequencedBatch, list[SealedRecord]]:
        await b.raw.add_tenants("acme", "beta")
        records = [sealed("acme") for _ in range(n)]
        batch = sequence(_empty("acme"), records)
        await b.store.commit(_work(0, None, n, [batch], [_empty("acme")]))
        return batch, records

    async def test_commit_makes_everything_visible_together(self, backend: LedgerBackend) -> None:
        """After one commit: the log's head, entries, dedup answers and the offset are all there."""
        batch, records = await self._first_batch(backend, 5)
        store = backend.store
        assert await store.load_offsets(group="g", topic="t", partitions=[0, 1]) == {0: 5}
        head = (await store.load_heads(["acme", "nope"]))["acme"]
        assert (head.size, head.compact, head.chain_head) == (5, batch.after.compact, batch.after.chain_head)
        assert await store.existing_event_ids("acme", _ids(records)) == {
            uuid.UUID(r.event_id): i for i, r in enumerate(records)}
        assert [row[0] for row in await backend.raw.entries("acme")] == list(range(5))
        assert await backend.raw.count("payloads") == 5 and await backend.raw.count("batches") == 1

    async def test_later_batches_extend_the_log(self, backend: LedgerBackend) -> None:
        """A second commit from the stored offset and head appends at the next indices."""
        batch, _ = await self._first_batch(backend, 3)
        more = sequence(batch.after, [sealed("acme") for _ in range(4)])
        await backend.store.commit(_work(0, 3, 9, [more], []))
        assert (await backend.raw.head("acme"))[0] == 7
        assert await backend.store.load_offsets(group="g", topic="t", partitions=[0]) == {0: 9}
        assert [row[0] for row in await backend.raw.entries("acme")] == list(range(7))

    async def test_a_moved_offset_conflicts_and_changes_nothing(self, backend: LedgerBackend) -> None:
        """Work that started from an offset that is no longer stored is refused, whole."""
        batch, _ = await self._first_batch(backend, 2)
        for start in (None, 1, 7):
            late = sequence(batch.after, [sealed("acme")])
            with pytest.raises(ConcurrentWriteError):
                await backend.store.commit(_work(0, start, 3, [late], []))
        assert await backend.store.load_offsets(group="g", topic="t", partitions=[0]) == {0: 2}
        assert (await backend.raw.head("acme"))[0] == 2
        assert await backend.raw.count("entries") == 2

    async def test_a_moved_log_rolls_back_the_whole_commit(self, backend: LedgerBackend) -> None:
        """When one log's size moved, nothing of the commit stays: not the other log, not the offset."""
        await self._first_batch(backend, 16)  # 16 leaves: one stored node, (4, 0)
        beta = sequence(_empty("beta"), [sealed("beta") for _ in range(16)])
        stale = sequence(_empty("acme"), [sealed("acme")])  # starts at size 0, the log is at 16
        with pytest.raises(ConcurrentWriteError):
            await backend.store.commit(_work(0, 16, 33, [beta, stale], [_empty("beta")]))
        assert await backend.store.load_heads(["beta"]) == {}
        assert await backend.store.load_offsets(group="g", topic="t", partitions=[0]) == {0: 16}
        assert await backend.raw.count("entries") == 16 and await backend.raw.count("tree_nodes") == 1

    async def test_creating_an_existing_log_conflicts(self, backend: LedgerBackend) -> None:
        """Two writers that both think a log is new: the second one is refused."""
        await self._first_batch(backend, 1)
        again = sequence(_empty("acme"), [sealed("acme")])
        with pytest.raises(ConcurrentWriteError):
            await backend.store.commit(_work(1, None, 1, [again], [_empty("acme")]))
        assert await backend.store.load_offsets(group="g", topic="t", partitions=[1]) == {}

    async def test_an_event_id_is_stored_once_per_log(self, backend: LedgerBackend) -> None:
        """A batch repeating an event id the log already holds is refused and changes nothing."""
        batch, records = await self._first_batch(backend, 2)
        repeat = sequence(batch.after, [records[0]])
        with pytest.raises(ConcurrentWriteError):
            await backend.store.commit(_work(0, 2, 3, [repeat], []))
        assert (await backend.raw.head("acme"))[0] == 2

    async def test_dedup_lookups_are_per_log(self, backend: LedgerBackend) -> None:
        """existing_event_ids answers for one log only, and only for ids it holds."""
        _, records = await self._first_batch(backend, 3)
        beta = [sealed("beta") for _ in range(2)]
        await backend.store.commit(_work(0, 3, 5, [sequence(_empty("beta"), beta)], [_empty("beta")]))
        unknown = uuid.uuid4()
        got = await backend.store.existing_event_ids("acme", [*_ids(records[1:]), *_ids(beta), unknown])
        assert got == {uuid.UUID(records[1].event_id): 1, uuid.UUID(records[2].event_id): 2}
        assert await backend.store.existing_event_ids("beta", _ids(records)) == {}

    async def test_offsets_are_per_group_and_partition(self, backend: LedgerBackend) -> None:
        """Offsets are kept per (group, topic, partition); a commit without batches moves only its offset."""
        await backend.raw.add_tenants("acme")
        await backend.store.commit(_work(2, None, 10, [], []))
        await backend.store.commit(_work(2, None, 4, [], [], group="other"))
        await backend.store.commit(_work(2, 10, 12, [], []))
        assert await backend.store.load_offsets(group="g", topic="t", partitions=[0, 1, 2]) == {2: 12}
        assert await backend.store.load_offsets(group="other", topic="t", partitions=[2]) == {2: 4}
        assert await backend.store.load_offsets(group="g", topic="u", partitions=[2]) == {}

    async def test_durable_offsets_are_the_stored_ones(self, backend: LedgerBackend) -> None:
        """After commits that did not wait for the disk, the durable offsets are the stored ones
        (the adapter flushes what it read before answering)."""
        await backend.raw.add_tenants("acme")
        await backend.store.commit(_work(0, None, 7, [], []))
        await backend.store.commit(_work(1, None, 3, [], []))
        await backend.store.commit(_work(0, 7, 9, [], []))
        assert await backend.store.durable_offsets(group="g", topic="t", partitions=[0, 1, 2]) == {0: 9, 1: 3}
        assert await backend.store.durable_offsets(group="g", topic="t", partitions=[1]) == {1: 3}

    async def test_known_tenants(self, backend: LedgerBackend) -> None:
        """tenants_exist returns exactly the known tenants among those asked."""
        await backend.raw.add_tenants("acme", "beta")
        assert await backend.store.tenants_exist(["acme", "gamma", "beta"]) == {"acme", "beta"}
        assert await backend.store.tenants_exist([]) == set()

    async def test_large_batches_and_lookups(self, backend: LedgerBackend) -> None:
        """A poll of thousands of records commits whole, and its ids are all found again."""
        batch, records = await self._first_batch(backend, 2500)
        unknown = [uuid.uuid4() for _ in range(100)]
        found = await backend.store.existing_event_ids("acme", [*_ids(records), *unknown])
        assert len(found) == 2500 and sorted(found.values()) == list(range(2500))
        assert (await backend.raw.head("acme"))[1] == batch.tree_root
