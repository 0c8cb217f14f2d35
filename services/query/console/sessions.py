"""Console sessions: an API key signs in once; the browser then holds only a random session id.

Sessions live in the query service's database (:class:`~services.query.ports.ConsoleSessionStore`),
so every query process on it accepts them, a sign-out ends them everywhere and a restart signs
nobody out. The database keeps only SHA-256 hashes of the session id and of its CSRF token, with
the key's :class:`~sealtrail.infra.auth.Principal` (never the key) and two deadlines: ``idle_s``
after its last use and ``max_age_s`` after sign-in, whichever comes first. The CSRF token is
derived from the session id (SHA-256 under a fixed context), so a reloaded page gets it from any
process. Every state-changing request through a session MUST carry ``X-CSRF-Token`` equal to the
session's token: unsafe methods, and a GET that reveals a payload (it writes an access event).
"""

from __future__ import annotations

import base64
import hashlib
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
from services.query.ports import ConsoleSessionStore, StoredSession

COOKIE = "sealtrail_console"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_CONTEXT = b"sealtrail console csrf\0"
TOUCH_EVERY_S = 30.0
"""A session's last use is written at most this often (or a tenth of the idle timeout if shorter)."""
WRITING_QUERY = frozenset({"purpose"})
"""Query parameters that make a GET write to the log (``?purpose=`` reveals a payload and logs an
access event): such a GET needs the CSRF token too."""


class ConsoleSettings(BaseSettings):
    """``SEALTRAIL_CONSOLE_IDLE_S``, ``SEALTRAIL_CONSOLE_MAX_AGE_S``, ``SEALTRAIL_CONSOLE_MAX_SESSIONS``,
    ``SEALTRAIL_CONSOLE_SIGNIN_BURST``, ``SEALTRAIL_CONSOLE_SIGNIN_PER_MINUTE``."""

    model_config = SettingsConfigDict(env_prefix="SEALTRAIL_CONSOLE_", extra="ignore", frozen=True)
    idle_s: float = Field(default=30 * 60, gt=0, description="a session unused this long ends")
    max_age_s: float = Field(default=8 * 3600, gt=0, description="a session ends this long after sign-in")
    max_sessions: int = Field(default=10_000, ge=1, description="the oldest sessions go beyond this")
    signin_burst: int = Field(default=10, ge=1, description="failed sign-ins an address or key id may make at once")
    signin_per_minute: float = Field(default=10.0, gt=0, description="failed sign-ins a minute, after the burst")


@dataclass(frozen=True, slots=True)
class Session:
    """A live session as the request sees it: the principal and the session's CSRF token."""

    principal: Principal
    csrf: str
    csrf_hash: bytes


def _hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def csrf_of(sid: str) -> str:
    """The session's CSRF token, derived from its id, so that any query process holding the cookie
    can give a reloaded page its token while the database keeps only hashes of both."""
    return base64.urlsafe_b64encode(hashlib.sha256(CSRF_CONTEXT + sid.encode()).digest()).rstrip(b"=").decode()


@dataclass
class SessionStore:
    """Sessions by the hash of their id, in the query service's database (``store``), so that
    every query process on that database accepts them and a sign-out ends them everywhere.
    ``clock`` is wall-clock seconds (shared by the processes' clocks)."""

    store: ConsoleSessionStore
    settings: ConsoleSettings = field(default_factory=ConsoleSettings)
    clock: Callable[[], float] = time.time

    async def open(self, principal: Principal) -> tuple[str, Session]:
        """A new session of ``principal``: its id (the cookie value) and the session."""
        now = self.clock()
        await self.store.delete_expired(now, idle_s=self.settings.idle_s, max_age_s=self.settings.max_age_s)
        sid = secrets.token_urlsafe(32)
        csrf = csrf_of(sid)
        await self.store.add(_hash(sid), StoredSession(principal, _hash(csrf), now, now),
                             max_sessions=self.settings.max_sessions)
        return sid, Session(principal, csrf, _hash(csrf))

    async def close(self, sid: str) -> None:
        await self.store.delete(_hash(sid))

    async def get(self, sid: str) -> Session:
        """The live session ``sid`` (its idle deadline moves on); AuthenticationError otherwise."""
        key = _hash(sid)
        stored = await self.store.find(key)
        now = self.clock()
        if stored is None:
            raise AuthenticationError("no console session; sign in again")
        if now - stored.last_used > self.settings.idle_s or now - stored.created > self.settings.max_age_s:
            await self.store.delete(key)
            raise AuthenticationError("the console session has expired; sign in again")
        if now - stored.last_used > min(TOUCH_EVERY_S, self.settings.idle_s / 10):
            await self.store.touch(key, now)
        return Session(stored.principal, csrf_of(sid), stored.csrf_hash)

    async def principal_for(self, request: Request) -> Principal | None:
        """The principal of the request's session cookie, None without one. A cookie of no live
        session is AuthenticationError; an unsafe method or a revealing GET without the session's
        CSRF token is PermissionDeniedError."""
        sid = request.cookies.get(COOKIE)
        if not sid:
            return None
        session = await self.get(sid)
        if request.method not in SAFE_METHODS or WRITING_QUERY & request.query_params.keys():
            check_csrf(session, request.headers.get(CSRF_HEADER))
        return session.principal


def check_csrf(session: Session, presented: str | None) -> None:
    """``presented`` must be the session's token: its hash is compared with the stored one."""
    if not presented or not hmac.compare_digest(_hash(presented), session.csrf_hash):
        raise PermissionDeniedError("missing or wrong X-CSRF-Token for this console session")
