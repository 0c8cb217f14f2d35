"""Key erasures announced by PostgreSQL reach every process's key cache at once.

Two key stores over one real database stand for two processes (ingest sealing, the query service
erasing). The sealing side caches keys for 60 s here, so only the announcement can explain a key
disappearing from its cache within the test's few seconds."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest

from sealtrail.core.sealing import Kek
from sealtrail.devstack._proc import free_port
from sealtrail.errors import PeriodExpiredError
from sealtrail.infra.keycache import CachingKeyStore
from sealtrail.infra.keyerasures import HEARD, start_listener
from sealtrail.infra.keystore_postgres import PostgresKeyStore
from tests.support.ledger import tenant_pool

REF = b"s" * 32
LISTENER = "sealtrail-test-keys"


@pytest.fixture
async def pool(fresh_db_url: str) -> AsyncIterator[asyncpg.Pool]:
    async with tenant_pool(fresh_db_url, "acme", "beta") as p:
        yield p


async def _until(predicate: Callable[[], Awaitable[bool]], what: str, within_s: float = 5) -> float:
    started = time.monotonic()
    while time.monotonic() - started < within_s:
        if await predicate():
            return time.monotonic() - started
        await asyncio.sleep(0.02)
    raise AssertionError(f"not within {within_s} s: {what}")


async def test_an_erasure_by_another_process_leaves_the_cache_at_once(fresh_db_url: str, pool: asyncpg.Pool) -> None:
    """A subject key erased and a period key expired through another store stop being served from
    this cache within a second (its TTL is 60 s): the next get-or-create makes a new subject key.
    Other tenants' and other subjects' cached keys stay cached."""
    kek = Kek.generate()
    sealing = CachingKeyStore(inner=PostgresKeyStore(pool=pool, kek=kek), ttl_s=60)
    erasing = PostgresKeyStore(pool=pool, kek=kek)
    async with contextlib.AsyncExitStack() as stack:
        listener = await start_listener(url=fresh_db_url, cache=sealing, application_name=LISTENER, stack=stack)
        assert listener.listening.is_set()
        key = await sealing.get_or_create_subject_key("acme", REF)
        other_subject = await sealing.get_or_create_subject_key("acme", b"o" * 32)
        other_tenant = await sealing.get_or_create_subject_key("beta", REF)
        period = await sealing.get_or_create_period_key("acme", "2026-12")
        heard = HEARD._value.get()

        assert await erasing.erase_subject("acme", REF) == [key.key_id]

        async def renewed() -> bool:
            return (await sealing.get_or_create_subject_key("acme", REF)).key_id != key.key_id

        took = await _until(renewed, "a new subject key after the erasure")
        assert took < 1.0 and HEARD._value.get() == heard + 1
        assert (await sealing.get_or_create_subject_key("acme", b"o" * 32)).key_id == other_subject.key_id
        assert (await sealing.get_or_create_subject_key("beta", REF)).key_id == other_tenant.key_id

        assert await erasing.expire_period("acme", "2026-12") == [period.key_id]
        await _until(lambda: _heard(heard + 2), "the period expiry announced")
        with pytest.raises(PeriodExpiredError):  # one key per period, ever: no new one is made
            await sealing.get_or_create_period_key("acme", "2026-12")


async def _heard(n: float) -> bool:
    return HEARD._value.get() >= n


async def test_a_listener_that_lost_its_connection_reconnects_and_drops_the_cache(
    fresh_db_url: str, pool: asyncpg.Pool
) -> None:
    """The listener's connection is terminated by the server: it reconnects, drops every cached key
    (announcements made meanwhile are lost to it), and hears the next erasure."""
    kek = Kek.generate()
    sealing = CachingKeyStore(inner=PostgresKeyStore(pool=pool, kek=kek), ttl_s=60)
    erasing = PostgresKeyStore(pool=pool, kek=kek)
    async with contextlib.AsyncExitStack() as stack:
        listener = await start_listener(url=fresh_db_url, cache=sealing, application_name=LISTENER, stack=stack)
        kept = await sealing.get_or_create_subject_key("acme", b"k" * 32)
        assert await pool.fetchval("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                                   " WHERE application_name = $1", LISTENER) == 1
        await _until(lambda: _not_listening(listener.listening), "the lost connection noticed", within_s=15)
        await _until(lambda: _is_set(listener.listening), "listening again")

        async def renewed_or_same() -> bool:
            # Dropped from the cache: the store is asked again (the key is still active, so the same id).
            return (await sealing.get_or_create_subject_key("acme", b"k" * 32)).key_id == kept.key_id

        assert await renewed_or_same()
        assert not sealing._entries or all(slot[2] == b"k" * 32 for slot in sealing._entries)

        key = await sealing.get_or_create_subject_key("acme", REF)
        await erasing.erase_subject("acme", REF)

        async def renewed() -> bool:
            return (await sealing.get_or_create_subject_key("acme", REF)).key_id != key.key_id

        assert await _until(renewed, "the erasure after the reconnect heard") < 1.0


async def _not_listening(event: asyncio.Event) -> bool:
    return not event.is_set()


async def _is_set(event: asyncio.Event) -> bool:
    return event.is_set()


async def test_no_subject_key_is_cached_while_the_listener_is_disconnected(
    fresh_db_url: str, pool: asyncpg.Pool
) -> None:
    """A listener that cannot reach its database hears no announcement: meanwhile the cache keeps
    no subject key, so a subject erased by another process gets a new key on the very next seal
    (the TTL is 60 s here). Period keys stay cached."""
    kek = Kek.generate()
    sealing = CachingKeyStore(inner=PostgresKeyStore(pool=pool, kek=kek), ttl_s=60)
    erasing = PostgresKeyStore(pool=pool, kek=kek)
    cached = await sealing.get_or_create_subject_key("acme", b"c" * 32)
    assert sealing._entries, "a connected-or-not-yet-listening cache starts by caching"
    unreachable = f"postgresql://sealtrail@127.0.0.1:{free_port()}/nothing"
    async with contextlib.AsyncExitStack() as stack:
        listener = await start_listener(url=unreachable, cache=sealing, application_name=LISTENER, stack=stack,
                                        ready_within_s=0.5)
        assert not listener.listening.is_set()
        assert not any(slot[1] == "subject" for slot in sealing._entries), "cached subject keys dropped"
        key = await sealing.get_or_create_subject_key("acme", REF)
        period = await sealing.get_or_create_period_key("acme", "2026-12")
        assert await erasing.erase_subject("acme", REF) == [key.key_id]
        assert (await sealing.get_or_create_subject_key("acme", REF)).key_id != key.key_id
        assert (await sealing.get_or_create_subject_key("acme", b"c" * 32)).key_id == cached.key_id
        assert not any(slot[1] == "subject" for slot in sealing._entries)
        assert (await sealing.get_or_create_period_key("acme", "2026-12")).key_id == period.key_id
        assert ("acme", "period", "2026-12") in sealing._entries


async def test_subject_keys_are_cached_again_once_the_listener_listens(
    fresh_db_url: str, pool: asyncpg.Pool
) -> None:
    """Once connected, the listener lets the cache keep subject keys again (one store call per TTL)."""
    kek = Kek.generate()
    sealing = CachingKeyStore(inner=PostgresKeyStore(pool=pool, kek=kek), ttl_s=60)
    async with contextlib.AsyncExitStack() as stack:
        listener = await start_listener(url=fresh_db_url, cache=sealing, application_name=LISTENER, stack=stack)
        assert listener.listening.is_set() and sealing.subject_keys_held
        await sealing.get_or_create_subject_key("acme", REF)
        assert ("acme", "subject", REF) in sealing._entries
    assert not sealing.subject_keys_held, "a stopped listener hears nothing: subject keys are not kept"
