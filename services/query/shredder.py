"""The retention shredder: expires period keys past each tenant's payload retention (DESIGN §4).

A tenant with ``retention_months = N`` keeps every payload at least ``N`` whole months: the
period key of month ``P`` expires once the month ``P + N + 1`` has begun (UTC). For each such
period, in one resumable sequence: record the run with the period key id, expire the key in the
key store, delete the ciphertexts sealed with it (in chunks, counting them), append a
``retention`` event (period, period key id, count) to the tenant's log, mark the run done. The
event id is fixed before publishing, so a repeated run appends the event once.

It runs every ``shred_interval_s`` inside each query process and on demand with
``sealtrail admin retention run``; a per-tenant advisory lock lets only one of them work on a
tenant at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from sealtrail.core.keystore import KeyStore, check_period, period_of
from sealtrail.errors import NotFoundError, SealtrailError
from sealtrail.infra.emitter import Emission, EventEmitter, new_event_id, retention_event
from sealtrail.infra.kafka import KafkaPublisher
from sealtrail.infra.kek import load_kek
from sealtrail.infra.keystore_postgres import PostgresKeyStore
from sealtrail.infra.pgerrors import translated
from sealtrail.infra.postgres import Conn, create_pool, migrate_url
from sealtrail.infra.settings import Settings
from services.query.config import WRITER_ID
from services.query.erasure_postgres import rows_affected
from services.query.metrics import QueryMetrics

log = logging.getLogger("sealtrail.query.shredder")

DELETE_CHUNK = 10_000
_TRY_LOCK = "SELECT pg_try_advisory_lock(hashtextextended('retention:' || $1, 0))"
_UNLOCK = "SELECT pg_advisory_unlock(hashtextextended('retention:' || $1, 0))"


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
    """Expires periods past retention (see the module docstring)."""

    def __init__(self, *, pool: asyncpg.Pool, keystore: KeyStore, emitter: EventEmitter,
                 metrics: QueryMetrics, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._pool = pool
        self._keystore = keystore
        self._emitter = emitter
        self._metrics = metrics
        self._clock = clock

    async def run_once(self, tenant: str | None = None) -> list[RetentionOutcome]:
        """One pass over every tenant (or one); returns the periods expired by this pass."""
        with translated("read retention settings"):
            rows = await self._pool.fetch(
                "SELECT tenant_id, retention_months FROM tenants WHERE ($1::text IS NULL OR tenant_id = $1)"
                " ORDER BY tenant_id", tenant)
        done: list[RetentionOutcome] = []
        for row in rows:
            done += await self._tenant(row["tenant_id"], row["retention_months"])
        return done

    async def _tenant(self, tenant: str, months: int | None) -> list[RetentionOutcome]:
        async with self._pool.acquire() as lock_conn:
            if not await lock_conn.fetchval(_TRY_LOCK, tenant):
                return []
            try:
                work = await self._due(lock_conn, tenant, months)
                return [await self._expire(tenant, period, key_id) for period, key_id in work]
            finally:
                await lock_conn.fetchval(_UNLOCK, tenant)

    async def _due(self, conn: Conn, tenant: str, months: int | None
                   ) -> list[tuple[str, str]]:
        """Pending runs first (resumed), then active period keys past retention."""
        pending = await conn.fetch("SELECT period, period_key_id FROM retention_runs"
                                   " WHERE tenant_id = $1 AND state = 'pending' ORDER BY period", tenant)
        work = [(r["period"], r["period_key_id"]) for r in pending]
        if months is None:
            return work
        active = await conn.fetch("SELECT period, key_id FROM data_keys WHERE tenant_id = $1"
                                  " AND kind = 'period' AND state = 'active'", tenant)
        keys = {r["period"]: r["key_id"] for r in active}
        seen = {p for p, _ in work}
        due = expired_periods(keys, now=self._clock(), months=months)
        work += [(p, keys[p]) for p in due if p not in seen]
        return work

    async def _expire(self, tenant: str, period: str, key_id: str) -> RetentionOutcome:
        with translated("start retention run"):
            await self._pool.execute(
                "INSERT INTO retention_runs (tenant_id, period, period_key_id, event_id)"
                " VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id, period) DO NOTHING",
                tenant, period, key_id, uuid.UUID(new_event_id()))
        await self._keystore.expire_period(tenant, period)
        deleted = await self._delete(tenant, period, key_id)
        with translated("read retention run"):
            run = await self._pool.fetchrow(
                "SELECT payloads_deleted, event_id FROM retention_runs WHERE tenant_id = $1 AND period = $2",
                tenant, period)
        if run is None:
            raise NotFoundError(f"retention run of {period} vanished while it ran")
        event_id = str(run["event_id"])
        event = retention_event(now=self._clock(), period=period, period_key_id=key_id,
                                payloads_deleted=run["payloads_deleted"], event_id=event_id)
        await self._emitter.emit(tenant, [Emission(event)])
        with translated("finish retention run"):
            await self._pool.execute("UPDATE retention_runs SET state = 'done', done_at = now()"
                                     " WHERE tenant_id = $1 AND period = $2", tenant, period)
        self._metrics.periods_expired.inc()
        self._metrics.payloads_deleted.labels(cause="retention").inc(deleted)
        log.info("period expired", extra={"tenant": tenant, "period": period, "payloads_deleted": deleted})
        return RetentionOutcome(tenant, period, key_id, run["payloads_deleted"], event_id)

    async def _delete(self, tenant: str, period: str, key_id: str) -> int:
        """Delete the period's ciphertexts in chunks, adding each chunk's count to the run."""
        total = 0
        while True:
            with translated("delete expired payloads"):
                async with self._pool.acquire() as conn, conn.transaction():
                    status = await conn.execute(
                        "DELETE FROM payloads WHERE ctid = ANY(ARRAY(SELECT ctid FROM payloads"
                        " WHERE tenant_id = $1 AND key_ids && ARRAY[$2::text] AND key_ids[1] = $2 LIMIT $3))",
                        tenant, key_id, DELETE_CHUNK)
                    count = rows_affected(status)
                    await conn.execute("UPDATE retention_runs SET payloads_deleted = payloads_deleted + $3"
                                       " WHERE tenant_id = $1 AND period = $2", tenant, period, count)
            total += count
            if count < DELETE_CHUNK:
                return total

    async def run_forever(self, interval_s: float, stop: asyncio.Event) -> None:
        """Run a pass every ``interval_s`` seconds until ``stop`` is set; a failed pass is logged."""
        while not stop.is_set():
            try:
                await self.run_once()
            except (SealtrailError, OSError, asyncpg.PostgresError) as e:
                log.error("retention pass failed", extra={"error_type": type(e).__name__})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval_s)


async def run_once_from_settings(settings: Settings, tenant: str | None = None) -> list[RetentionOutcome]:
    """One shredder pass with components built from ``settings`` (``sealtrail admin retention run``)."""
    url = settings.require_database()
    await migrate_url(url)
    kek = load_kek(settings)
    pool = await create_pool(url, min_size=1, max_size=4)
    publisher = KafkaPublisher(bootstrap=settings.require_kafka())
    try:
        await publisher.start()
        keystore = PostgresKeyStore(pool=pool, kek=kek)
        emitter = EventEmitter(keystore=keystore, publisher=publisher, topic=settings.sealed_topic,
                               writer=WRITER_ID)
        shredder = Shredder(pool=pool, keystore=keystore, emitter=emitter, metrics=QueryMetrics())
        return await shredder.run_once(tenant)
    finally:
        await publisher.stop()
        await pool.close()
