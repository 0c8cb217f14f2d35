"""Reading one log's published material from the query API, as an auditor (scope ``proofs:read``).

Only httpx and the pure core: the light install (library and verifier) can audit a live log.
HTTP failures become :mod:`sealtrail.errors` types carrying the server's problem ``detail``.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson

from sealtrail.core.audit import AuditEntry
from sealtrail.core.entrypage import MEDIA_TYPE, decode_page
from sealtrail.errors import (
    AuthenticationError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    SealtrailError,
    UnavailableError,
)

PAGE = 1000
PREFETCH = 4
_BY_STATUS: dict[int, type[SealtrailError]] = {
    400: InvalidInputError, 401: AuthenticationError, 403: PermissionDeniedError, 404: NotFoundError,
}


def http_client(url: str, token: str, *, transport: httpx.AsyncBaseTransport | None = None,
                timeout_s: float = 60.0) -> httpx.AsyncClient:
    """An httpx client for the query API at ``url`` sending ``token`` as a bearer credential."""
    return httpx.AsyncClient(base_url=url.rstrip("/"), transport=transport, timeout=timeout_s,
                             headers={"Authorization": f"Bearer {token}"})


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
        return orjson.loads((await self._get(path, params)).content)

    async def keys(self) -> list[dict[str, Any]]:
        body = await self._json("/v1/keys")
        return list(body["keys"])

    async def origin(self) -> str:
        for log in (await self._json("/v1/logs"))["logs"]:
            if log["log"] == self.log:
                return str(log["origin"])
        raise NotFoundError(f"no log {self.log!r} visible to this key")

    async def checkpoint_notes(self) -> list[str]:
        """Every signed checkpoint of the log, oldest first (paged)."""
        notes: list[str] = []
        start: int | None = 0
        while start is not None:
            body = await self._json(f"/v1/logs/{self.log}/checkpoints", {"from": start})
            notes += [c["note"] for c in body["checkpoints"]]
            start = body.get("next")
        return notes

    async def entries(self, start: int, end: int) -> list[AuditEntry]:
        """Entries [start, end), in the binary page form when the server offers it."""
        resp = await self._get(f"/v1/logs/{self.log}/entries", {"start": start, "end": end},
                               accept=f"{MEDIA_TYPE}, application/json;q=0.5")
        if resp.headers.get("content-type", "").startswith(MEDIA_TYPE):
            return decode_page(resp.content)
        body = orjson.loads(resp.content)
        b64 = base64.b64decode
        return [AuditEntry(e["index"], b64(e["entry"]), b64(e["chain"]), e["payload_digest"])
                for e in body["entries"]]

    async def iter_entries(self, size: int, *, page: int = PAGE, prefetch: int = PREFETCH
                           ) -> AsyncIterator[list[AuditEntry]]:
        """Pages of entries [0, size) in order, with up to ``prefetch`` requests in flight."""
        starts = iter(range(0, size, page))
        pending: list[asyncio.Task[list[AuditEntry]]] = []
        try:
            while True:
                while len(pending) < prefetch and (start := next(starts, None)) is not None:
                    pending.append(asyncio.ensure_future(self.entries(start, min(start + page, size))))
                if not pending:
                    return
                yield await pending.pop(0)
        finally:
            for task in pending:
                task.cancel()
