"""Deduplication left to the store's uniqueness (``lookup_duplicates="after_conflict"``), on real
PostgreSQL and on SQLite: a repeated event id refuses the whole commit, the same records sequenced
again from the stored offset skip it, and for a while every poll is looked up first."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from sealtrail.core.record import SealedRecord
from sealtrail.errors import DuplicateEventError
from sealtrail.infra.bus import BusRecord
from services.ledger import metrics
from services.ledger.deadletter import DeadLetterSink
from services.ledger.ports import LedgerStore
from services.ledger.worker import CAREFUL_S, LedgerWorker
from tests.support.backends import LedgerBackend, postgres_backend, sqlite_backend
from tests.support.ledger import DelegatingStore, NoDeadLetters, sealed

TOPIC = "sealed"


class _CountingStore(DelegatingStore):
    """A real store that counts the event-id lookups it answers."""

    def __init__(self, inner: LedgerStore) -> None:
        super().__init__(inner)
        self.lookups = 0

    async def existing_event_ids(self, log_id: str, event_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, int]:
        self.lookups += 1
        return await self._inner.existing_event_ids(log_id, event_ids)


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@contextlib.asynccontextmanager
async def _backend(kind: str, fresh_db_url: str, tmp_path: Path) -> AsyncIterator[LedgerBackend]:
    opened = postgres_backend(fresh_db_url) if kind == "postgres" else sqlite_backend(tmp_path / "ledger.db")
    async with opened as backend:
        await backend.raw.add_tenants("acme")
        yield backend


def _records(first_offset: int, records: list[SealedRecord]) -> list[BusRecord]:
    return [BusRecord(TOPIC, 0, first_offset + i, r.log.encode(), r.encode()) for i, r in enumerate(records)]


@pytest.fixture(params=["postgres", "sqlite"])
def backend_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_a_repeat_of_a_committed_event_refuses_the_commit_then_is_skipped(
    backend_kind: str, fresh_db_url: str, tmp_path: Path
) -> None:
    """Poll 2 repeats an event of poll 1: its optimistic commit fails as a whole (nothing of it
    stored, the offset unmoved), and the same poll sequenced again logs every other record once."""
    async with _backend(backend_kind, fresh_db_url, tmp_path) as backend:
        store, clock = _CountingStore(backend.store), _Clock()
        worker = LedgerWorker(store=store, dead_letters=DeadLetterSink(publisher=NoDeadLetters(), topic="dlq"),
                              group="g", topic=TOPIC, lookup_duplicates="after_conflict", clock=clock)
        first = [sealed("acme") for _ in range(50)]
        assert await worker.handle(0, None, _records(0, first)) == 50
        second = [sealed("acme") for _ in range(30)]
        poll = _records(50, [*second[:10], first[17], *second[10:]])
        retries = metrics.DUPLICATE_RETRIES._value.get()

        with pytest.raises(DuplicateEventError):
            await worker.handle(0, 50, poll)
        assert store.lookups == 0  # the optimistic commit did not look anything up
        assert metrics.DUPLICATE_RETRIES._value.get() == retries + 1
        assert await backend.raw.count("entries") == 50
        assert await store.load_offsets(group="g", topic=TOPIC, partitions=[0]) == {0: 50}

        assert await worker.handle(0, 50, poll) == 81  # from the stored offset, as a driver re-seeks
        assert store.lookups == 1
        entries = await backend.raw.entries("acme")
        assert [idx for idx, *_ in entries] == list(range(80))
        assert (await backend.raw.head("acme"))[0] == 80


async def test_lookups_last_for_the_careful_window_after_a_refused_commit(
    backend_kind: str, fresh_db_url: str, tmp_path: Path
) -> None:
    """After a refused commit every poll is looked up for CAREFUL_S seconds, then none is; with
    lookup_duplicates="always" every poll is, and a repeat never refuses a commit."""
    async with _backend(backend_kind, fresh_db_url, tmp_path) as backend:
        store, clock = _CountingStore(backend.store), _Clock()
        worker = LedgerWorker(store=store, dead_letters=DeadLetterSink(publisher=NoDeadLetters(), topic="dlq"),
                              group="g", topic=TOPIC, lookup_duplicates="after_conflict", clock=clock)
        logged = [sealed("acme") for _ in range(5)]
        offset = await worker.handle(0, None, _records(0, logged))
        with pytest.raises(DuplicateEventError):
            await worker.handle(0, offset, _records(offset, [logged[0]]))
        clock.now += CAREFUL_S - 1
        offset = await worker.handle(0, offset, _records(offset, [logged[0], sealed("acme")]))
        assert store.lookups == 1
        clock.now += 2
        fresh = sealed("acme")
        offset = await worker.handle(0, offset, _records(offset, [fresh]))
        assert store.lookups == 1  # the window has passed
        assert (await backend.raw.head("acme"))[0] == 7

        careful = LedgerWorker(store=store, dead_letters=DeadLetterSink(publisher=NoDeadLetters(), topic="dlq"),
                               group="g", topic=TOPIC, lookup_duplicates="always", clock=clock)
        assert await careful.handle(0, offset, _records(offset, [fresh, logged[3]])) == offset + 2
        assert store.lookups == 2
        assert (await backend.raw.head("acme"))[0] == 7
