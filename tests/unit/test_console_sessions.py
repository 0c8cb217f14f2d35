"""Console sessions: idle and absolute expiry, CSRF on unsafe methods, the cookie read, and what the
database keeps (hashes only), over the SQLite session store of ``sealtrail serve``."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from starlette.requests import Request

from sealtrail.errors import AuthenticationError, PermissionDeniedError
from sealtrail.infra.auth import Principal, Role
from sealtrail.infra.sqlite import SqliteDatabase, open_database
from services.query.console.sessions import COOKIE, ConsoleSettings, SessionStore
from services.query.sqlite.sessions import SqliteConsoleSessionStore

ALICE = Principal(key_id="0123456789abcdef", tenant_id="default", role=Role.INVESTIGATOR, label="")


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def request(method: str, sid: str | None, csrf: str | None = None, query: bytes = b"") -> Request:
    headers = []
    if sid is not None:
        headers.append((b"cookie", f"{COOKIE}={sid}".encode()))
    if csrf is not None:
        headers.append((b"x-csrf-token", csrf.encode()))
    return Request({"type": "http", "method": method, "path": "/v1/calls", "headers": headers, "query_string": query})


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[SqliteDatabase]:
    database = await open_database(tmp_path / "sessions.db")
    try:
        yield database
    finally:
        await database.close()


def store(db: SqliteDatabase, clock: Clock, **settings: float) -> SessionStore:
    return SessionStore(store=SqliteConsoleSessionStore(db=db),
                        settings=ConsoleSettings(**settings), clock=clock)  # type: ignore[arg-type]


async def test_a_session_stands_for_its_principal_until_idle(db: SqliteDatabase) -> None:
    """Each use moves the idle deadline on; unused for longer than idle_s, the session is gone."""
    clock = Clock()
    sessions = store(db, clock, idle_s=60, max_age_s=3600)
    sid, _ = await sessions.open(ALICE)
    clock.now += 59
    assert await sessions.principal_for(request("GET", sid)) == ALICE
    clock.now += 59  # used 59 s ago: still alive
    assert await sessions.principal_for(request("GET", sid)) == ALICE
    clock.now += 61
    with pytest.raises(AuthenticationError, match="expired"):
        await sessions.principal_for(request("GET", sid))
    with pytest.raises(AuthenticationError, match="no console session"):
        await sessions.principal_for(request("GET", sid))


async def test_a_session_ends_at_its_absolute_age_however_busy(db: SqliteDatabase) -> None:
    """However often it is used, a session ends max_age_s after sign-in."""
    clock = Clock()
    sessions = store(db, clock, idle_s=60, max_age_s=100)
    sid, _ = await sessions.open(ALICE)
    for _ in range(3):
        clock.now += 30
        await sessions.get(sid)
    clock.now += 11
    with pytest.raises(AuthenticationError, match="expired"):
        await sessions.get(sid)


async def test_unsafe_methods_need_the_sessions_csrf_token(db: SqliteDatabase) -> None:
    """POST, PUT and DELETE need this session's token; another session's token is refused."""
    sessions = store(db, Clock())
    sid, session = await sessions.open(ALICE)
    other_sid, other = await sessions.open(ALICE)
    assert session.csrf != other.csrf
    for method in ("POST", "PUT", "DELETE"):
        with pytest.raises(PermissionDeniedError, match="X-CSRF-Token"):
            await sessions.principal_for(request(method, sid))
        with pytest.raises(PermissionDeniedError, match="X-CSRF-Token"):
            await sessions.principal_for(request(method, sid, other.csrf))
        assert await sessions.principal_for(request(method, sid, session.csrf)) == ALICE
    assert await sessions.principal_for(request("GET", other_sid)) == ALICE


async def test_no_cookie_is_no_session_and_closed_sessions_are_gone(db: SqliteDatabase) -> None:
    """Without a cookie there is no session; beyond max_sessions the oldest goes; a closed one is gone."""
    clock = Clock()
    sessions = store(db, clock, max_sessions=2)
    assert await sessions.principal_for(request("GET", None)) is None
    first, _ = await sessions.open(ALICE)
    for _ in range(2):
        clock.now += 1
        await sessions.open(ALICE)  # the oldest goes
    with pytest.raises(AuthenticationError):
        await sessions.get(first)
    sid, _ = await sessions.open(ALICE)
    await sessions.close(sid)
    with pytest.raises(AuthenticationError):
        await sessions.get(sid)
    assert await db.read(lambda c: c.execute("SELECT count(*) FROM console_sessions").fetchone()[0]) == 1


async def test_a_revealing_get_needs_the_csrf_token_too(db: SqliteDatabase) -> None:
    """A GET with ?purpose= writes an access event, so it needs the token like a write."""
    sessions = store(db, Clock())
    sid, session = await sessions.open(ALICE)
    with pytest.raises(PermissionDeniedError, match="X-CSRF-Token"):
        await sessions.principal_for(request("GET", sid, query=b"purpose=incident.review"))
    assert await sessions.principal_for(request("GET", sid, session.csrf, b"purpose=incident.review")) == ALICE
    assert await sessions.principal_for(request("GET", sid, query=b"limit=5")) == ALICE


async def test_the_database_keeps_only_hashes_of_the_session_id_and_csrf_token(db: SqliteDatabase) -> None:
    """Neither the session id nor the CSRF token is stored, only their SHA-256; a second store on
    the same database (another process) finds the session and gives the same CSRF token."""
    sessions = store(db, Clock())
    sid, session = await sessions.open(ALICE)
    rows = await db.read(lambda c: c.execute("SELECT * FROM console_sessions").fetchall())
    stored = b"".join(v if isinstance(v, bytes) else str(v).encode() for v in rows[0])
    assert sid.encode() not in stored and session.csrf.encode() not in stored
    assert hashlib.sha256(sid.encode()).digest() in stored and hashlib.sha256(session.csrf.encode()).digest() in stored
    again = await store(db, Clock()).get(sid)
    assert (again.principal, again.csrf) == (ALICE, session.csrf)
