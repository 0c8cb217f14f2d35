"""Reading one log's published material from the query API, as an auditor (scope ``proofs:read``).

Only httpx and the pure core: the light install (library and verifier) can audit a live log.
HTTP failures become :mod:`sealtrail.errors` types carrying the server's problem ``detail``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import httpx
import orjson

from sealtrail.core.audit import AuditEntry, audit_entry
from sealtrail.core.entrypage import MEDIA_TYPE, decode_page
from sealtrail.errors import (
    AuthenticationError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    SealtrailError,
    UnavailableError,
    VerificationError,
)

PAGE = 1000
_T = TypeVar("_T")
PREFETCH = 4
_BY_STATUS: dict[int, type[SealtrailError]] = {
    400: InvalidInputError, 401: AuthenticationError, 403: PermissionDeniedError, 404: NotFoundError,
}


def http_client(url: str, token: str, *, transport: httpx.AsyncBaseTransport | None = None,
                timeout_s: float = 60.0) -> httpx.AsyncClient:
    """An httpx client for the query API at ``url`` sending ``token`` as a bearer credential;
    :class:`InvalidInputError` when ``url`` is no URL."""
    try:
        return httpx.AsyncClient(base_url=url.rstrip("/"), transport=transport, timeout=timeout_s,
                                 headers={"Authorization": f"Bearer {token}"})
    except httpx.InvalidURL as e:
        raise InvalidInputError(f"query API URL {url!r} is not a valid URL: {e}") from e


class LogClient:
    """The published material of one log: keys, checkpoint notes, entries with payload presence."""

    def __init__(self, http: httpx.AsyncClient, log: str) -> None:
        self._http = http
        self.log = log

    async def _get(self, path: str, params: dict[str, Any] | None = None, *, accept: str = "application/json"
                   ) -> httpx.Response:
        try:
            resp = await self._http.get(path, params=params, headers={"Accept": accept})
        except httpx.HTTPError as e:
            raise UnavailableError(f"query API unreachable: {type(e).__name__}") from e
        if resp.status_code != 200:
            try:
                detail = str(orjson.loads(resp.content).get("detail", ""))
            except (orjson.JSONDecodeError, AttributeError):
                detail = ""
            kind = _BY_STATUS.get(resp.status_code, UnavailableError)
            raise kind(f"GET {path} answered {resp.status_code}: {detail or resp.reason_phrase}")
        return resp

    async def _json(self, path: str, params: dict[str, Any] | None = None) -> Any:
        try:
            return orjson.loads((await self._get(path, params)).content)
        except orjson.JSONDecodeError as e:
            raise _malformed(path, "not JSON") from e

    async def keys(self) -> list[Any]:
        """The published keys (each checked by :func:`~sealtrail.core.audit.trusted_keys`)."""
        body = await self._json("/v1/keys")
        keys = body.get("keys") if isinstance(body, dict) else None
        if not isinstance(keys, list):
            raise _malformed("/v1/keys", "no keys list")
        return keys

    async def origin(self) -> str:
        body = await self._json("/v1/logs")
        logs = body.get("logs") if isinstance(body, dict) else None
        if not isinstance(logs, list) or not all(isinstance(log, dict) for log in logs):
            raise _malformed("/v1/logs", "no logs list")
        for log in logs:
            if log.get("log") == self.log:
                origin = log.get("origin")
                if not isinstance(origin, str):
                    raise _malformed("/v1/logs", f"no origin string for log {self.log!r}")
                return origin
        raise NotFoundError(f"no log {self.log!r} visible to this key")

    async def checkpoint_notes(self) -> list[str]:
        """Every signed checkpoint of the log, oldest first (paged; each ``next`` MUST lie beyond
        the position asked for, or the server is refused rather than followed round a loop)."""
        path = f"/v1/logs/{self.log}/checkpoints"
        notes: list[str] = []
        start: int | None = 0
        while start is not None:
            body = await self._json(path, {"from": start})
            page = body.get("checkpoints") if isinstance(body, dict) else None
            if not isinstance(page, list) or not all(isinstance(c, dict) and isinstance(c.get("note"), str)
                                                     for c in page):
                raise _malformed(path, "no list of checkpoints with notes")
            notes += [c["note"] for c in page]
            after = body.get("next")
            if after is not None and (not isinstance(after, int) or isinstance(after, bool) or after <= start):
                raise _malformed(path, f"next {after!r} does not advance beyond {start}")
            start = after
        return notes

    async def entries(self, start: int, end: int) -> list[AuditEntry]:
        """Entries [start, end), in the binary page form when the server offers it."""
        page = await self.page(start, end)
        return decode_page(page) if isinstance(page, bytes) else page

    async def page(self, start: int, end: int) -> bytes | list[AuditEntry]:
        """Entries [start, end): the binary page undecoded when the server offers that form (see
        :mod:`sealtrail.core.entrypage`), else the JSON page's entries."""
        path = f"/v1/logs/{self.log}/entries"
        resp = await self._get(path, {"start": start, "end": end}, accept=f"{MEDIA_TYPE}, application/json;q=0.5")
        if resp.headers.get("content-type", "").startswith(MEDIA_TYPE):
            return resp.content
        try:
            rows = orjson.loads(resp.content).get("entries")
            if not isinstance(rows, list):
                raise ValueError("no entries list")
            return [audit_entry(row) for row in rows]
        except (orjson.JSONDecodeError, AttributeError, ValueError) as e:
            raise _malformed(path, str(e)) from e

    async def iter_entries(self, size: int, *, page: int = PAGE, prefetch: int = PREFETCH
                           ) -> AsyncIterator[list[AuditEntry]]:
        """Pages of entries [0, size) in order, with up to ``prefetch`` requests in flight."""
        async for got in self._iter(self.entries, size, page, prefetch):
            yield got

    async def iter_pages(self, size: int, *, page: int = PAGE, prefetch: int = PREFETCH
                         ) -> AsyncIterator[bytes | list[AuditEntry]]:
        """As :meth:`iter_entries`, with binary pages left undecoded (:meth:`page`)."""
        async for got in self._iter(self.page, size, page, prefetch):
            yield got

    async def _iter(self, fetch: Callable[[int, int], Awaitable[_T]], size: int, page: int, prefetch: int
                    ) -> AsyncIterator[_T]:
        starts = iter(range(0, size, page))
        pending: list[asyncio.Task[_T]] = []
        try:
            while True:
                while len(pending) < prefetch and (start := next(starts, None)) is not None:
                    pending.append(asyncio.ensure_future(fetch(start, min(start + page, size))))
                if not pending:
                    return
                yield await pending.pop(0)
        finally:
            for task in pending:
                task.cancel()


    async def iter_calls(self) -> AsyncIterator[dict[str, Any]]:
        """Every page of ``GET /v1/calls?type=all`` (needs ``calls:read``), newest first."""
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"type": "all", "limit": CALLS_PAGE}
            if cursor is not None:
                params["cursor"] = cursor
            body = await self._json("/v1/calls", params)
            if not isinstance(body, dict) or not isinstance(body.get("calls"), list):
                raise _malformed("/v1/calls", "no calls list")
            yield body
            following = body.get("next")
            if following is None:
                return
            if not isinstance(following, str) or following == cursor:
                raise _malformed("/v1/calls", "next does not advance")
            cursor = following


CALLS_PAGE = 1000


def _malformed(path: str, what: str) -> VerificationError:
    return VerificationError(f"GET {path} answered malformed JSON: {what}")
