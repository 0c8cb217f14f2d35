"""A short-TTL, in-process cache in front of any :class:`~sealtrail.core.keystore.KeyStore`.

Ingest seals every event with its month's period key and one key per subject; without a cache
each would be a database round trip. Entries live :data:`DEFAULT_KEY_CACHE_TTL_S` seconds (10 s)
at most. An erasure made through this wrapper drops the entries at once; an erasure announced by
another process is applied with :meth:`CachingKeyStore.invalidate` (on PostgreSQL,
:mod:`sealtrail.infra.keyerasures` hears the announcements). In the worst case (no
announcement arrives) a cached key is gone from every process :attr:`ttl_s` seconds after its
erasure, which is the time an erasure reports through :meth:`CachingKeyStore.clear_by`. While the
announcements are known not to be heard (the listener is disconnected), :meth:`CachingKeyStore.hold_subject_keys`
keeps no subject key at all: every seal asks the store, so an erasure applies at once.

Concurrent misses for one key share one store call. ``get_keys`` (revealing old payloads) is
never cached: an erased key must not be read back from memory.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime, timedelta

from sealtrail.core.keystore import KeyStore
from sealtrail.core.sealing import DataKey

DEFAULT_KEY_CACHE_TTL_S = 10.0
DEFAULT_KEY_CACHE_MAX_ENTRIES = 100_000

_Slot = tuple[str, str, bytes | str]  # (tenant, kind, subject_ref | period)


class CachingKeyStore(KeyStore):
    """Caches get-or-create results of ``inner`` for ``ttl_s`` seconds."""

    def __init__(
        self, *, inner: KeyStore, ttl_s: float = DEFAULT_KEY_CACHE_TTL_S,
        max_entries: int = DEFAULT_KEY_CACHE_MAX_ENTRIES,
    ) -> None:
        self._inner = inner
        self._ttl = ttl_s
        self._max = max_entries
        self._entries: dict[_Slot, tuple[DataKey, float]] = {}
        self._pending: dict[_Slot, asyncio.Future[DataKey]] = {}
        # Bumped by every invalidation: a load that began before one must not fill the cache,
        # or it could put back a key erased while it was in flight.
        self._generation = 0
        self._subject_keys_held = True

    @property
    def ttl_s(self) -> float:
        return self._ttl

    def clear_by(self, erased_at: datetime | None = None) -> datetime:
        """The time after which no cache in any process can still hold a key erased at ``erased_at``."""
        return (erased_at or datetime.now(UTC)) + timedelta(seconds=self._ttl)

    @property
    def subject_keys_held(self) -> bool:
        return self._subject_keys_held

    def hold_subject_keys(self, hold: bool) -> None:
        """Cache subject keys (``True``, the default) or not at all (``False``).

        Turned off while the erasure announcements are not heard: a subject key erased by another
        process meanwhile MUST NOT be sealed with again, so every cached subject key is dropped at
        once and each lookup goes to the store until the announcements are heard again.
        """
        self._subject_keys_held = hold
        if not hold:
            self._generation += 1
            for slot in [s for s in self._pending if s[1] == "subject"]:
                del self._pending[slot]
            for slot in [s for s in self._entries if s[1] == "subject"]:
                del self._entries[slot]

    async def get_or_create_subject_key(self, tenant: str, subject_ref: bytes) -> DataKey:
        if not self._subject_keys_held:
            return await self._inner.get_or_create_subject_key(tenant, subject_ref)
        return await self._cached((tenant, "subject", subject_ref),
                                  lambda: self._inner.get_or_create_subject_key(tenant, subject_ref))

    async def get_or_create_period_key(self, tenant: str, period: str) -> DataKey:
        return await self._cached((tenant, "period", period),
                                  lambda: self._inner.get_or_create_period_key(tenant, period))

    async def get_keys(self, tenant: str, key_ids: Iterable[str]) -> dict[str, DataKey | None]:
        return await self._inner.get_keys(tenant, key_ids)

    async def erase_subject(self, tenant: str, subject_ref: bytes) -> list[str]:
        erased = await self._inner.erase_subject(tenant, subject_ref)
        self._entries.pop((tenant, "subject", subject_ref), None)
        self.invalidate(tenant=tenant, key_ids=erased)
        return erased

    async def expire_period(self, tenant: str, period: str) -> list[str]:
        expired = await self._inner.expire_period(tenant, period)
        self._entries.pop((tenant, "period", period), None)
        self.invalidate(tenant=tenant, key_ids=expired)
        return expired

    def invalidate(self, *, tenant: str | None = None, key_ids: Iterable[str] | None = None) -> None:
        """Drop cached keys: those of ``key_ids`` (in ``tenant`` if given), else all of ``tenant``,
        else everything. Call it when an erasure or expiry is announced."""
        ids = None if key_ids is None else set(key_ids)
        self._generation += 1
        for slot in [s for s in self._pending if tenant is None or s[0] == tenant]:
            del self._pending[slot]
        for slot, (key, _) in list(self._entries.items()):
            if tenant is not None and slot[0] != tenant:
                continue
            if ids is None or key.key_id in ids:
                del self._entries[slot]

    async def _cached(self, slot: _Slot, load: Callable[[], Awaitable[DataKey]]) -> DataKey:
        now = time.monotonic()
        hit = self._entries.get(slot)
        if hit is not None and now < hit[1]:
            return hit[0]
        pending = self._pending.get(slot)
        if pending is not None:
            try:
                return await asyncio.shield(pending)
            except asyncio.CancelledError:
                if not pending.cancelled():
                    raise  # this caller was cancelled
                return await self._cached(slot, load)  # the loading caller was; load again
        future: asyncio.Future[DataKey] = asyncio.get_running_loop().create_future()
        self._pending[slot] = future
        generation = self._generation
        try:
            key = await load()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as e:
            future.set_exception(e)
            future.exception()  # mark retrieved: there may be no waiter
            raise
        finally:
            if self._pending.get(slot) is future:
                del self._pending[slot]
        future.set_result(key)
        if self._ttl > 0 and generation == self._generation:
            if len(self._entries) >= self._max:
                self._entries.clear()
            self._entries[slot] = (key, now + self._ttl)
        return key
