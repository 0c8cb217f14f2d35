"""Console sessions: an API key signs in once; the browser then holds only a random session id.

The store is in memory, in this process: a restart signs everyone out. A session keeps the
key's :class:`~sealtrail.infra.auth.Principal` (never the key), a synchronizer CSRF token, and
two deadlines: ``idle_s`` after its last use and ``max_age_s`` after sign-in, whichever comes
first. Every state-changing request through a session MUST carry ``X-CSRF-Token`` equal to the
session's token: unsafe methods, and a GET that reveals a payload (it writes an access event).
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.requests import Request

from sealtrail.errors import AuthenticationError, PermissionDeniedError
from sealtrail.infra.auth import Principal

COOKIE = "sealtrail_console"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
WRITING_QUERY = frozenset({"purpose"})
"""Query parameters that make a GET write to the log (``?purpose=`` reveals a payload and logs an
access event): such a GET needs the CSRF token too."""


class ConsoleSettings(BaseSettings):
    """``SEALTRAIL_CONSOLE_IDLE_S``, ``SEALTRAIL_CONSOLE_MAX_AGE_S``, ``SEALTRAIL_CONSOLE_MAX_SESSIONS``."""

    model_config = SettingsConfigDict(env_prefix="SEALTRAIL_CONSOLE_", extra="ignore", frozen=True)
    idle_s: float = Field(default=30 * 60, gt=0, description="a session unused this long ends")
    max_age_s: float = Field(default=8 * 3600, gt=0, description="a session ends this long after sign-in")
    max_sessions: int = Field(default=10_000, ge=1, description="the oldest sessions go beyond this")


@dataclass(slots=True)
class Session:
    principal: Principal
    csrf: str
    created: float
    last_used: float


@dataclass
class SessionStore:
    """Sessions by id, in memory; ``clock`` is monotonic seconds."""

    settings: ConsoleSettings = field(default_factory=ConsoleSettings)
    clock: Callable[[], float] = time.monotonic
    _sessions: dict[str, Session] = field(default_factory=dict)

    def open(self, principal: Principal) -> tuple[str, Session]:
        """A new session of ``principal``: its id (the cookie value) and the session."""
        self._prune()
        while len(self._sessions) >= self.settings.max_sessions:
            del self._sessions[next(iter(self._sessions))]
        now = self.clock()
        sid = secrets.token_urlsafe(32)
        session = Session(principal, secrets.token_urlsafe(32), now, now)
        self._sessions[sid] = session
        return sid, session

    def close(self, sid: str) -> None:
        self._sessions.pop(sid, None)

    def get(self, sid: str) -> Session:
        """The live session ``sid`` (its idle deadline moves on); AuthenticationError otherwise."""
        session = self._sessions.get(sid)
        now = self.clock()
        if session is None:
            raise AuthenticationError("no console session; sign in again")
        if now - session.last_used > self.settings.idle_s or now - session.created > self.settings.max_age_s:
            del self._sessions[sid]
            raise AuthenticationError("the console session has expired; sign in again")
        session.last_used = now
        return session

    def principal_for(self, request: Request) -> Principal | None:
        """The principal of the request's session cookie, None without one. A cookie of no live
        session is AuthenticationError; an unsafe method or a revealing GET without the session's
        CSRF token is PermissionDeniedError."""
        sid = request.cookies.get(COOKIE)
        if not sid:
            return None
        session = self.get(sid)
        if request.method not in SAFE_METHODS or WRITING_QUERY & request.query_params.keys():
            check_csrf(session, request.headers.get(CSRF_HEADER))
        return session.principal

    def _prune(self) -> None:
        now = self.clock()
        idle, max_age = self.settings.idle_s, self.settings.max_age_s
        for sid in [s for s, v in self._sessions.items() if now - v.last_used > idle or now - v.created > max_age]:
            del self._sessions[sid]

    def __len__(self) -> int:
        return len(self._sessions)


def check_csrf(session: Session, presented: str | None) -> None:
    if not presented or not hmac.compare_digest(presented.encode(), session.csrf.encode()):
        raise PermissionDeniedError("missing or wrong X-CSRF-Token for this console session")
