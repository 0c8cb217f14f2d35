"""Console sessions shared by two query processes on one PostgreSQL database (behind a load
balancer): a session opened through one is accepted by the other, the CSRF token is the same from
either, and signing out through one ends the session in both. The database holds only hashes."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

import httpx
import pytest

from services.query.app import create_app as create_query
from services.query.config import QueryOptions
from services.query.console.sessions import COOKIE
from services.query.service import QueryParts
from tests.support.query import QueryStack

pytestmark = pytest.mark.services


@pytest.fixture
async def second(stack: QueryStack) -> AsyncIterator[httpx.AsyncClient]:
    """Another query app over the same database, Kafka topic and service key as ``stack.api``."""
    app = create_query(stack.settings, options=QueryOptions(auth_cache_ttl_s=0, shred_interval_s=0,
                                                            publish_timeout_s=5),
                       parts=QueryParts(signer=stack.signer))
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://query-b", timeout=60) as client:
        yield client


async def test_a_session_opened_on_one_process_is_accepted_and_ended_by_the_other(
        stack: QueryStack, second: httpx.AsyncClient) -> None:
    """Sign in through A; B answers with the session (same CSRF token) and accepts a write with
    that token; sign out through B; A then refuses the cookie (401)."""
    first = stack.api
    signed = await first.post("/console/session", json={"key": stack.tokens["acme:investigator"]})
    assert signed.status_code == 200, signed.text
    sid, csrf = signed.cookies[COOKIE], signed.json()["csrf"]
    cookie = {"Cookie": f"{COOKIE}={sid}"}
    who = await second.get("/console/session", headers=cookie)
    assert who.status_code == 200 and who.json()["csrf"] == csrf and who.json()["tenant"] == "acme"
    assert (await second.get("/v1/calls", params={"limit": 1}, headers=cookie)).status_code == 200
    refused = await second.delete("/console/session", headers=cookie)
    assert refused.status_code == 403  # no CSRF token
    assert (await first.get("/v1/calls", params={"limit": 1}, headers=cookie)).status_code == 200
    out = await second.delete("/console/session", headers={**cookie, "X-CSRF-Token": csrf})
    assert out.status_code == 204
    for client in (first, second):
        gone = await client.get("/v1/calls", params={"limit": 1}, headers=cookie)
        assert gone.status_code == 401 and "sign in" in gone.json()["detail"]


async def test_the_sessions_table_holds_hashes_only(stack: QueryStack, second: httpx.AsyncClient) -> None:
    """The stored row has SHA-256 of the session id and of the CSRF token, never either token or the key."""
    key = stack.tokens["acme:investigator"]
    signed = await second.post("/console/session", json={"key": key})
    sid, csrf = signed.cookies[COOKIE], signed.json()["csrf"]
    row = await stack.pool.fetchrow("SELECT * FROM console_sessions WHERE session_hash = $1",
                                    hashlib.sha256(sid.encode()).digest())
    assert row is not None and bytes(row["csrf_hash"]) == hashlib.sha256(csrf.encode()).digest()
    text = repr(dict(row))
    assert sid not in text and csrf not in text and key not in text and key.split("_")[-1] not in text
