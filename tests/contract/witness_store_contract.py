"""The witness-store contract, run against every adapter.

Subclass :class:`WitnessStoreContract` and override the ``store`` fixture with a fresh store.
"""

from __future__ import annotations

import asyncio

import pytest

from sealtrail.core.witness import LogRecord
from services.witness.ports import WitnessStore
from tests.support.witnesslog import WitnessedLog


class WitnessStoreContract:
    """What every :class:`~services.witness.ports.WitnessStore` adapter guarantees."""

    @pytest.fixture
    async def store(self) -> WitnessStore:
        raise NotImplementedError("an adapter's test class overrides the store fixture")

    async def test_a_new_log_starts_empty(self, store: WitnessStore) -> None:
        """put_log records origin and keys, size 0, no root and no note."""
        log = WitnessedLog(1)
        assert await store.get_log(log.origin) is None
        await store.put_log(log.origin, [log.vkey])
        assert await store.get_log(log.origin) == LogRecord(log.origin, (log.vkey,), 0, b"", None)
        assert [r.origin for r in await store.list_logs()] == [log.origin]

    async def test_advance_is_a_compare_and_swap(self, store: WitnessStore) -> None:
        """advance writes only over the expected record, and returns whether it did."""
        log = WitnessedLog(9)
        await store.put_log(log.origin, [log.vkey])
        start = await store.get_log(log.origin)
        assert start is not None
        assert await store.advance(log.origin, expected=start, size=5, root=log.root(5), note="n5\n")
        assert not await store.advance(log.origin, expected=start, size=9, root=log.root(9), note="n9\n")
        now = await store.get_log(log.origin)
        assert now is not None and (now.size, now.root, now.note) == (5, log.root(5), "n5\n")
        stale_root = LogRecord(log.origin, (), 5, log.root(4))
        assert not await store.advance(log.origin, expected=stale_root, size=9, root=log.root(9), note="x\n")
        assert await store.advance(log.origin, expected=now, size=9, root=log.root(9), note="n9\n")
        after = await store.get_log(log.origin)
        assert after is not None and (after.size, after.root) == (9, log.root(9))

    async def test_put_log_keeps_the_record(self, store: WitnessStore) -> None:
        """Replacing a log's keys keeps its latest cosigned size, root and note."""
        log, other = WitnessedLog(4), WitnessedLog(1)
        await store.put_log(log.origin, [log.vkey])
        start = await store.get_log(log.origin)
        assert start is not None
        assert await store.advance(log.origin, expected=start, size=4, root=log.root(4), note="n\n")
        await store.put_log(log.origin, [other.vkey, log.vkey])
        rec = await store.get_log(log.origin)
        assert rec == LogRecord(log.origin, (other.vkey, log.vkey), 4, log.root(4), "n\n")

    async def test_advance_of_unknown_log_does_nothing_and_disable_keeps_the_record(
            self, store: WitnessStore) -> None:
        """No record, no write; disable_log drops the keys but keeps size, root and note."""
        log = WitnessedLog(2)
        ghost = LogRecord(log.origin, (log.vkey,))
        assert not await store.advance(log.origin, expected=ghost, size=2, root=log.root(2), note="n\n")
        assert not await store.disable_log(log.origin)
        await store.put_log(log.origin, [log.vkey])
        start = await store.get_log(log.origin)
        assert start is not None
        assert await store.advance(log.origin, expected=start, size=2, root=log.root(2), note="n\n")
        assert await store.disable_log(log.origin)
        assert await store.get_log(log.origin) == LogRecord(log.origin, (), 2, log.root(2), "n\n")

    async def test_concurrent_advances_from_one_record_let_exactly_one_win(self, store: WitnessStore) -> None:
        """Twenty racing compare-and-swaps from the same record: one writes, nineteen change nothing."""
        log = WitnessedLog(30)
        await store.put_log(log.origin, [log.vkey])
        start = await store.get_log(log.origin)
        assert start is not None
        wins = await asyncio.gather(*(
            store.advance(log.origin, expected=start, size=n, root=log.root(n), note=f"n{n}\n")
            for n in range(10, 30)))
        assert sum(wins) == 1
        won = 10 + wins.index(True)
        rec = await store.get_log(log.origin)
        assert rec is not None and (rec.size, rec.root, rec.note) == (won, log.root(won), f"n{won}\n")
