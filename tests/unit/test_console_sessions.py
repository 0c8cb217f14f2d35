"""Console sessions: idle and absolute expiry, CSRF on unsafe methods, the cookie read."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from sealtrail.errors import AuthenticationError, PermissionDeniedError
from sealtrail.infra.auth import Principal, Role
from services.query.console.sessions import COOKIE, ConsoleSettings, SessionStore

ALICE = Principal(key_id="0123456789abcdef", tenant_id="default", role=Role.INVESTIGATOR, label="")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def request(method: str, sid: str | None, csrf: str | None = None, query: bytes = b"") -> Request:
    headers = []
    if sid is not None:
        headers.append((b"cookie", f"{COOKIE}={sid}".encode()))
    if csrf is not None:
        headers.append((b"x-csrf-token", csrf.encode()))
    return Request({"type": "http", "method": method, "path": "/v1/calls", "headers": headers, "query_string": query})


def store(clock: Clock, **settings: float) -> SessionStore:
    return SessionStore(settings=ConsoleSettings(**settings), clock=clock)  # type: ignore[arg-type]


def test_a_session_stands_for_its_principal_until_idle() -> None:
    clock = Clock()
    sessions = store(clock, idle_s=60, max_age_s=3600)
    sid, _ = sessions.open(ALICE)
    clock.now += 59
    assert sessions.principal_for(request("GET", sid)) == ALICE
    clock.now += 59  # used 59 s ago: still alive
    assert sessions.principal_for(request("GET", sid)) == ALICE
    clock.now += 61
    with pytest.raises(AuthenticationError, match="expired"):
        sessions.principal_for(request("GET", sid))
    with pytest.raises(AuthenticationError, match="no console session"):
        sessions.principal_for(request("GET", sid))


def test_a_session_ends_at_its_absolute_age_however_busy() -> None:
    clock = Clock()
    sessions = store(clock, idle_s=60, max_age_s=100)
    sid, _ = sessions.open(ALICE)
    for _ in range(3):
        clock.now += 30
        sessions.get(sid)
    clock.now += 11
    with pytest.raises(AuthenticationError, match="expired"):
        sessions.get(sid)


def test_unsafe_methods_need_the_sessions_csrf_token() -> None:
    sessions = store(Clock())
    sid, session = sessions.open(ALICE)
    other_sid, other = sessions.open(ALICE)
    for method in ("POST", "PUT", "DELETE"):
        with pytest.raises(PermissionDeniedError, match="X-CSRF-Token"):
            sessions.principal_for(request(method, sid))
        with pytest.raises(PermissionDeniedError, match="X-CSRF-Token"):
            sessions.principal_for(request(method, sid, other.csrf))
        assert sessions.principal_for(request(method, sid, session.csrf)) == ALICE
    assert sessions.principal_for(request("GET", other_sid)) == ALICE


def test_no_cookie_is_no_session_and_closed_sessions_are_gone() -> None:
    sessions = store(Clock(), max_sessions=2)
    assert sessions.principal_for(request("GET", None)) is None
    first, _ = sessions.open(ALICE)
    sessions.open(ALICE)
    sessions.open(ALICE)  # the oldest goes
    assert len(sessions) == 2
    with pytest.raises(AuthenticationError):
        sessions.get(first)
    sid, _ = sessions.open(ALICE)
    sessions.close(sid)
    with pytest.raises(AuthenticationError):
        sessions.get(sid)


def test_a_revealing_get_needs_the_csrf_token_too() -> None:
    sessions = store(Clock())
    sid, session = sessions.open(ALICE)
    with pytest.raises(PermissionDeniedError, match="X-CSRF-Token"):
        sessions.principal_for(request("GET", sid, query=b"purpose=incident.review"))
    assert sessions.principal_for(request("GET", sid, session.csrf, b"purpose=incident.review")) == ALICE
    assert sessions.principal_for(request("GET", sid, query=b"limit=5")) == ALICE
