"""The retention shredder: expires period keys past each tenant's payload retention (DESIGN §4).

A tenant with ``retention_months = N`` keeps every payload at least ``N`` whole months: the
period key of month ``P`` expires once the month ``P + N + 1`` has begun (UTC). For each such
period, in one resumable sequence: record the run with the period key id, expire the key in the
key store, delete the ciphertexts sealed with it (in chunks, counting them), append a
``retention`` event (period, period key id, count) to the tenant's log, mark the run done. The
event id is fixed before publishing, so a repeated run appends the event once.

It runs every ``shred_interval_s`` inside each query process and on demand with
``sealtrail admin retention run``; the store's per-tenant lock lets only one of them work on a
tenant at a time. Storage goes through :class:`~services.query.ports.RetentionStore`
(PostgreSQL or SQLite).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from sealtrail.core.keystore import KeyStore, check_period, period_of
from sealtrail.errors import NotFoundError, SealtrailError
from sealtrail.infra.emitter import Emission, EventEmitter, new_event_id, retention_event
from services.query.metrics import QueryMetrics
from services.query.ports import RetentionStore

log = logging.getLogger("sealtrail.query.shredder")

DELETE_CHUNK = 10_000


def _month_number(period: str) -> int:
    year, month = check_period(period).split("-")
    return int(year) * 12 + int(month) - 1


def expired_periods(periods: Iterable[str], *, now: datetime, months: int) -> list[str]:
    """The periods whose retention of ``months`` whole months has run out at ``now``."""
    current = _month_number(period_of(now))
    return sorted(p for p in periods if _month_number(p) + months + 1 <= current)


@dataclass(frozen=True, slots=True)
class RetentionOutcome:
    tenant: str
    period: str
    period_key_id: str
    payloads_deleted: int
    event_id: str


class Shredder:
    """Expires periods past retention (see the module docstring), through a :class:`RetentionStore`."""

    def __init__(self, *, store: RetentionStore, keystore: KeyStore, emitter: EventEmitter,
                 metrics: QueryMetrics, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._store = store
        self._keystore = keystore
        self._emitter = emitter
        self._metrics = metrics
        self._clock = clock

    async def run_once(self, tenant: str | None = None) -> list[RetentionOutcome]:
        """One pass over every tenant (or one); returns the periods expired by this pass."""
        done: list[RetentionOutcome] = []
        for tenant_id, months in await self._store.tenants(tenant):
            done += await self._tenant(tenant_id, months)
        return done

    async def _tenant(self, tenant: str, months: int | None) -> list[RetentionOutcome]:
        async with self._store.locked(tenant) as mine:
            if not mine:
                return []
            work = await self._due(tenant, months)
            return [await self._expire(tenant, period, key_id) for period, key_id in work]

    async def _due(self, tenant: str, months: int | None) -> list[tuple[str, str]]:
        """Pending runs first (resumed), then active period keys past retention."""
        work = await self._store.pending_runs(tenant)
        if months is None:
            return work
        keys = await self._store.active_period_keys(tenant)
        seen = {p for p, _ in work}
        due = expired_periods(keys, now=self._clock(), months=months)
        work += [(p, keys[p]) for p in due if p not in seen]
        return work

    async def _expire(self, tenant: str, period: str, key_id: str) -> RetentionOutcome:
        await self._store.start_run(tenant, period, key_id, new_event_id())
        await self._keystore.expire_period(tenant, period)
        deleted = await self._delete(tenant, period, key_id)
        run = await self._store.run_state(tenant, period)
        if run is None:
            raise NotFoundError(f"retention run of {period} vanished while it ran")
        payloads_deleted, event_id = run
        event = retention_event(now=self._clock(), period=period, period_key_id=key_id,
                                payloads_deleted=payloads_deleted, event_id=event_id)
        await self._emitter.emit(tenant, [Emission(event)])
        await self._store.finish_run(tenant, period)
        self._metrics.periods_expired.inc()
        self._metrics.payloads_deleted.labels(cause="retention").inc(deleted)
        log.info("period expired", extra={"tenant": tenant, "period": period, "payloads_deleted": deleted})
        return RetentionOutcome(tenant, period, key_id, payloads_deleted, event_id)

    async def _delete(self, tenant: str, period: str, key_id: str) -> int:
        """Delete the period's ciphertexts in chunks, adding each chunk's count to the run."""
        total = 0
        while True:
            count = await self._store.delete_chunk(tenant, period, key_id, DELETE_CHUNK)
            total += count
            if count < DELETE_CHUNK:
                return total

    async def run_forever(self, interval_s: float, stop: asyncio.Event) -> None:
        """Run a pass every ``interval_s`` seconds until ``stop`` is set; a failed pass is logged."""
        while not stop.is_set():
            try:
                await self.run_once()
            except (SealtrailError, OSError, asyncpg.PostgresError, sqlite3.Error) as e:
                log.error("retention pass failed", extra={"error_type": type(e).__name__})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval_s)
