"""``/console``: the page, its assets, and sign-in/sign-out (docs/console.md).

- ``GET /console`` the page; ``GET /console/static/{name}`` its assets (files of ``static/``,
  read once; no build step, no CDN).
- ``POST /console/session`` with ``{"key": "st_..."}``: signs in (failed sign-ins are limited per
  client address and key id: :mod:`services.query.console.signin`). The answer sets the session
  cookie (``HttpOnly``, ``SameSite=Strict``, ``Path=/``, ``Secure`` over TLS) and carries the
  role, the scopes and the CSRF token; the key itself is not kept. Gateway and operator keys are
  refused: the console has nothing for them.
- ``GET /console/session``: who is signed in, and the CSRF token (for a reloaded page).
- ``DELETE /console/session``: signs out (CSRF token required).

The console's data comes from the ``/v1`` routes, which accept the session cookie in place of
``Authorization`` (:func:`services.query.deps.current_principal`), so each route's role check is
the console's. Every answer under ``/console`` carries :data:`SECURITY_HEADERS` (:class:`ConsoleHeaders`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sealtrail.errors import (
    AuthenticationError,
    BackpressureError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)
from sealtrail.infra.auth import Principal, Role
from services.query.console.sessions import COOKIE, CSRF_HEADER, SessionStore, check_csrf
from services.query.console.signin import SignInLimiter, key_prefix, retry_seconds

log = logging.getLogger("sealtrail.query.console")
STATIC = Path(__file__).parent / "static"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}
_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
          ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
CONSOLE_ROLES = frozenset({Role.INVESTIGATOR, Role.DPO, Role.AUDITOR})

router = APIRouter(prefix="/console", include_in_schema=False)


def _assets() -> dict[str, tuple[bytes, str]]:
    return {p.name: (p.read_bytes(), _TYPES[p.suffix]) for p in sorted(STATIC.iterdir()) if p.suffix in _TYPES}


ASSETS = _assets()


def secured(response: Response, *, cache: str = "no-store") -> Response:
    response.headers["Cache-Control"] = cache
    return response


class ConsoleHeaders:
    """Adds :data:`SECURITY_HEADERS` to every answer under ``/console``, errors included."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app
        self._headers = [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path != "/console" and not path.startswith("/console/"):
            await self._app(scope, receive, send)
            return

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *self._headers]
            await send(message)

        await self._app(scope, receive, sending)


def _json(body: dict[str, Any], status: int = 200) -> Response:
    return secured(Response(orjson.dumps(body), status_code=status, media_type="application/json"))


def _store(request: Request) -> SessionStore:
    store: SessionStore = request.app.state.console_sessions
    return store


def _who(principal: Principal, csrf: str) -> dict[str, Any]:
    return {"tenant": principal.tenant_id, "role": principal.role.value, "key_id": principal.key_id,
            "scopes": sorted(s.value for s in principal.scopes), "csrf": csrf}


def _same_origin(request: Request) -> None:
    """A browser's sign-in from another site is refused: Origin, when sent, must be this host."""
    origin = request.headers.get("origin")
    if origin is not None and origin.split("://", 1)[-1] != request.headers.get("host", ""):
        raise PermissionDeniedError("sign-in from another origin is refused")


async def _checked(request: Request, key: str) -> Principal:
    """The key's principal, unless too many sign-ins failed lately from this address or with this
    key id (429 with Retry-After, before the key is checked); a failure is counted against both."""
    limiter: SignInLimiter = request.app.state.console_signin
    metrics = request.app.state.query.metrics
    address = request.client.host if request.client is not None else "unknown"
    buckets = (f"address:{address}", key_prefix(key))
    wait = limiter.retry_after(buckets)
    if wait > 0:
        metrics.console_sign_ins.labels(outcome="limited").inc()
        log.warning("console sign-in refused: too many failed sign-ins",
                    extra={"client": address, "key_id": buckets[1], "retry_after_s": retry_seconds(wait)})
        raise BackpressureError(f"too many failed sign-ins from this address or with this key; retry in "
                                f"{retry_seconds(wait)} s", retry_after=wait)
    try:
        principal: Principal = await request.app.state.query.authenticator.authenticate(f"Bearer {key}")
    except AuthenticationError:
        limiter.failed(buckets)
        metrics.console_sign_ins.labels(outcome="failed").inc()
        log.info("console sign-in failed", extra={"client": address, "key_id": buckets[1]})
        raise
    return principal


@router.get("")
async def page() -> Response:
    body, media = ASSETS["index.html"]
    return secured(Response(body, media_type=media))


@router.get("/static/{name}")
async def asset(name: str) -> Response:
    found = ASSETS.get(name)
    if found is None or name == "index.html":
        raise NotFoundError("no such console asset")
    return secured(Response(found[0], media_type=found[1]), cache="no-cache")


@router.post("/session")
async def sign_in(request: Request) -> Response:
    _same_origin(request)
    if (request.headers.get("content-type") or "").split(";")[0].strip() != "application/json":
        raise InvalidInputError("sign in with a JSON body {\"key\": \"st_...\"}", pointer="header:content-type")
    try:
        key = orjson.loads(await request.body()).get("key")
    except (orjson.JSONDecodeError, AttributeError):
        key = None
    if not isinstance(key, str) or not key:
        raise InvalidInputError("sign in with a JSON body {\"key\": \"st_...\"}", pointer="/key")
    service = request.app.state.query
    principal = await _checked(request, key)
    if principal.role not in CONSOLE_ROLES:
        service.metrics.console_sign_ins.labels(outcome="refused").inc()
        raise PermissionDeniedError(f"a {principal.role.value} key cannot sign in to the console")
    service.metrics.console_sign_ins.labels(outcome="ok").inc()
    store = _store(request)
    sid, session = await store.open(principal)
    response = _json(_who(principal, session.csrf))
    response.set_cookie(COOKIE, sid, httponly=True, samesite="strict", path="/",
                        secure=request.url.scheme == "https")
    return response


@router.get("/session")
async def whoami(request: Request) -> Response:
    sid = request.cookies.get(COOKIE)
    if not sid:
        raise AuthenticationError("no console session; sign in")
    session = await _store(request).get(sid)
    return _json(_who(session.principal, session.csrf))


@router.delete("/session")
async def sign_out(request: Request) -> Response:
    sid = request.cookies.get(COOKIE)
    store = _store(request)
    if sid:
        check_csrf(await store.get(sid), request.headers.get(CSRF_HEADER))
        await store.close(sid)
    response = secured(Response(status_code=204))
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response
