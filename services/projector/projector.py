"""The projector: follows every log's committed entries and keeps the read models up to date.

Each step projects one batch of each log that is behind, in index order; every batch commits
with its progress row (see :class:`~services.projector.ports.ProjectorStore`), so the
projector can be killed at any instant and resumes where the last commit left it. Several
projectors may run at once: a log being projected by one is skipped by the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

from prometheus_client import Counter, Gauge, Histogram

from sealtrail.errors import UnavailableError
from services.projector.ports import DEFAULT_BATCH_ENTRIES, LogProgress, ProjectorStore

DEFAULT_POLL_INTERVAL_S = 0.5

ENTRIES = Counter("sealtrail_projector_entries_total", "Entries projected into the read models", ["log"])
SUBJECT_ROWS = Counter("sealtrail_projector_subject_rows_total", "Subject index rows written")
BATCH_SECONDS = Histogram("sealtrail_projector_batch_seconds", "Time to project and commit one batch",
                          buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
LAG = Gauge("sealtrail_projector_lag_entries", "Committed entries not yet projected", ["log"])

UNAVAILABLE = Gauge("sealtrail_projector_database_unavailable",
                    "1 while the projector retries because the database is unavailable")
# Longest wait between attempts while the database is unavailable.
MAX_RETRY_S = 5.0

log = logging.getLogger("sealtrail.projector")


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


class Projector:
    """Drives a :class:`ProjectorStore` over all logs."""

    def __init__(self, *, store: ProjectorStore, batch_entries: int = DEFAULT_BATCH_ENTRIES,
                 poll_interval_s: float = DEFAULT_POLL_INTERVAL_S) -> None:
        if batch_entries < 1:
            raise ValueError("batch_entries must be at least 1")
        self._store = store
        self._batch = batch_entries
        self._poll = poll_interval_s
        self.unavailable = False

    async def step(self, *, until: Mapping[str, int] | None = None) -> int:
        """Project at most one batch of every log that is behind; return the entries projected.

        With ``until``, a log is projected only up to (not including) its index there, and logs
        it does not name are left alone.
        """
        done = 0
        for progress in await self._store.logs():
            LAG.labels(progress.log_id).set(progress.lag)
            stop = progress.size if until is None else min(progress.size, until.get(progress.log_id, 0))
            if stop > progress.next_idx:
                done += await self._one_batch(progress, stop)
        return done

    async def _one_batch(self, progress: LogProgress, stop: int) -> int:
        started = time.perf_counter()
        result = await self._store.project_batch(progress, max_entries=self._batch, until=stop)
        if result is None or result.entries == 0:
            return 0
        BATCH_SECONDS.observe(time.perf_counter() - started)
        ENTRIES.labels(progress.log_id).inc(result.entries)
        SUBJECT_ROWS.inc(result.subject_rows)
        LAG.labels(progress.log_id).set(max(0, progress.size - result.next_idx))
        return result.entries

    async def catch_up(self, *, until: Mapping[str, int] | None = None) -> int:
        """Step until no log is behind (or every log reached ``until``); return the entries projected."""
        total = 0
        while True:
            done = await self.step(until=until)
            if done == 0:
                return total
            total += done

    async def run(self, stop: asyncio.Event) -> None:
        """Project until ``stop`` is set, polling every ``poll_interval_s`` when caught up.

        While the database is unavailable, retries with a backoff (1 s doubling up to
        :data:`MAX_RETRY_S`) instead of ending: every batch commits with its progress, so nothing
        is lost or projected twice, and the process need not be restarted. :attr:`unavailable`
        says whether the last attempt failed so (readiness reports it).
        """
        wait = 0.0
        while not stop.is_set():
            try:
                done = await self.step()
            except UnavailableError as e:
                wait = min(MAX_RETRY_S, wait * 2 or 1.0)
                if not self.unavailable:
                    log.warning("database unavailable: %s; retrying", e)
                self.unavailable = True
                UNAVAILABLE.set(1)
                await _sleep_unless(stop, wait)
                continue
            if self.unavailable:
                log.info("database available again; projecting")
            self.unavailable, wait = False, 0.0
            UNAVAILABLE.set(0)
            if done == 0:
                await _sleep_unless(stop, self._poll)

    async def rebuild(self) -> int:
        """Empty the read models and replay every log from index 0; return the entries projected."""
        await self._store.reset()
        log.info("read models truncated; replaying every log from index 0")
        return await self.catch_up()


@dataclass(frozen=True)
class RebuildCheck:
    """Digests of the read models before and after a rebuild to the same log positions."""

    before: dict[str, str]
    after: dict[str, str]
    positions: dict[str, int]

    @property
    def equal(self) -> bool:
        return self.before == self.after

    @property
    def differing(self) -> list[str]:
        return sorted(t for t in self.before if self.before[t] != self.after.get(t))


async def rebuild_equals_incremental(store: ProjectorStore, *, batch_entries: int = DEFAULT_BATCH_ENTRIES
                                     ) -> RebuildCheck:
    """Rebuild the read models from scratch up to where incremental projection had reached, and
    compare digests. The read models are replaced by the rebuilt ones; no projector may run
    meanwhile. ``RebuildCheck.equal`` is the invariant the chaos suite asserts."""
    positions = {p.log_id: p.next_idx for p in await store.logs() if p.next_idx > 0}
    before = await store.digest()
    await store.reset()
    await Projector(store=store, batch_entries=batch_entries).catch_up(until=positions)
    return RebuildCheck(before, await store.digest(), positions)
