"""Hears key erasures announced by PostgreSQL and drops the keys from a process's key cache.

Migration 0007 makes every data key that stops being active (a subject's erasure, a period's
expiry) notify ``sealtrail_key_erased`` with ``{"tenant", "key_id"}`` when its transaction commits.
:class:`KeyErasureListener` keeps one connection listening on that channel and calls
:meth:`~sealtrail.infra.keycache.CachingKeyStore.invalidate` for each announcement, so a key erased
through any process stops being used for sealing within moments instead of at the end of its cache
TTL. Announcements are not queued for a listener that is not connected: until it listens (and
whenever it has lost its connection) the cache keeps no subject key, after every (re)connect the
whole cache is dropped. The TTL stays the bound an erasure reports (``caches_clear_by``): a
connection that died quietly is noticed at the next heartbeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from contextlib import AsyncExitStack

import asyncpg
import orjson
from prometheus_client import Counter

from sealtrail.infra.keycache import CachingKeyStore

CHANNEL = "sealtrail_key_erased"
HEARD = Counter("sealtrail_key_erasures_heard_total", "Key erasures announced by the database and applied "
                "to this process's key cache")

log = logging.getLogger("sealtrail.keys")


class KeyErasureListener:
    """Listens for key erasures on ``url`` and applies them to ``cache`` until stopped."""

    def __init__(self, *, url: str, cache: CachingKeyStore, application_name: str,
                 retry_s: float = 1.0, heartbeat_s: float = 5.0) -> None:
        self._url = url
        self._cache = cache
        self._name = application_name
        self._retry_s = retry_s
        self._heartbeat_s = heartbeat_s
        self.listening = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        """Listen, reconnecting after any failure, until ``stop`` is set."""
        while not stop.is_set():
            self._cache.hold_subject_keys(False)
            try:
                await self._listen(stop)
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
                log.warning("key erasure announcements not heard: %s; reconnecting", type(e).__name__)
            finally:
                self.listening.clear()
                self._cache.hold_subject_keys(False)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self._retry_s)

    async def _listen(self, stop: asyncio.Event) -> None:
        conn = await asyncpg.connect(self._url, server_settings={"application_name": self._name})
        try:
            await conn.add_listener(CHANNEL, self._heard)
            # Whatever was erased while no one listened may still be cached: drop it all.
            self._cache.invalidate()
            self._cache.hold_subject_keys(True)
            self.listening.set()
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self._heartbeat_s)
                # A connection that died quietly would hear nothing: this raises instead.
                await conn.execute("SELECT 1", timeout=self._heartbeat_s)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), timeout=2)

    def _heard(self, conn: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy, pid: int, channel: str,
               payload: object) -> None:
        try:
            note = orjson.loads(payload if isinstance(payload, str | bytes) else "")
            tenant, key_id = str(note["tenant"]), str(note["key_id"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            log.warning("an announcement on %s is not {tenant, key_id}; dropping every cached key", channel)
            self._cache.invalidate()
            return
        self._cache.invalidate(tenant=tenant, key_ids=[key_id])
        HEARD.inc()


async def start_listener(*, url: str, cache: CachingKeyStore, application_name: str, stack: AsyncExitStack,
                         ready_within_s: float = 5.0) -> KeyErasureListener:
    """Run a :class:`KeyErasureListener` until ``stack`` closes; return once it listens (or after
    ``ready_within_s``: it keeps trying, and the cache TTL bounds what it misses meanwhile)."""
    listener = KeyErasureListener(url=url, cache=cache, application_name=application_name)
    stop = asyncio.Event()
    task = asyncio.create_task(listener.run(stop), name=f"{application_name}-listener")

    async def end() -> None:
        stop.set()
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=5)

    stack.push_async_callback(end)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(listener.listening.wait(), timeout=ready_within_s)
    return listener
