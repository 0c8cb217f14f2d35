"""The issuers' JWKS, fetched over HTTP(S) (``jwks_url``) or read from a file (``jwks_file``) and
cached: the :class:`~services.gateway.oauth.KeySource` the app factory gives the OAuth validator.

A set is kept for ``jwks_cache_s`` seconds. A token naming an unknown ``kid`` makes one refetch,
at most once per ``jwks_refetch_s`` seconds per issuer (so a stream of made-up key ids costs the
issuer nothing), and the refetched set replaces the old one whole: a key the issuer removed stops
verifying at the next refetch. When a refetch fails the last good set stays in use.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from sealtrail.errors import UnavailableError
from services.gateway.errors import GatewayError
from services.gateway.oauth import ALGORITHMS, Issuer, fits

log = logging.getLogger("sealtrail.gateway")
MAX_JWKS_BYTES = 1024 * 1024
FETCH_TIMEOUT_S = 5.0


class JwksError(GatewayError):
    """One fetch or read of a JWKS failed; the message names the issuer and why (never a key)."""


@dataclass
class _Cached:
    keys: list[dict[str, Any]] = field(default_factory=list)
    fetched_at: float = float("-inf")
    """When the set was last (re)loaded, successfully or not: the refetch interval counts from it."""
    loaded: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class JwksCache:
    def __init__(self, *, cache_s: float, refetch_s: float, clock: Callable[[], float] = time.monotonic,
                 client: httpx.AsyncClient | None = None) -> None:
        self._cache_s, self._refetch_s, self._clock = cache_s, refetch_s, clock
        self._client = client or httpx.AsyncClient(timeout=FETCH_TIMEOUT_S, follow_redirects=False)
        self._sets: dict[str, _Cached] = {}
        self.fetches = 0

    async def key(self, issuer: Issuer, kid: str | None, alg: str) -> dict[str, Any] | None:
        cached = self._sets.setdefault(issuer.issuer, _Cached())
        age = self._clock() - cached.fetched_at
        if age >= (self._cache_s if cached.loaded else self._refetch_s):
            await self._reload(issuer, cached, stale=cached.fetched_at)
        found = _pick(cached.keys, kid, alg)
        if found is None and self._clock() - cached.fetched_at >= self._refetch_s:
            await self._reload(issuer, cached, stale=cached.fetched_at)
            found = _pick(cached.keys, kid, alg)
        if not cached.loaded:
            raise UnavailableError(f"the keys of issuer {issuer.issuer} cannot be had; retry later", retry_after=5)
        return found

    async def _reload(self, issuer: Issuer, cached: _Cached, *, stale: float) -> None:
        async with cached.lock:
            if cached.fetched_at != stale:  # another request reloaded it while this one waited
                return
            cached.fetched_at = self._clock()
            self.fetches += 1
            try:
                keys = await self._load(issuer)
            except JwksError as e:
                log.warning("JWKS of issuer %s not (re)loaded, %s: %s", issuer.issuer,
                            "the last good set stays" if cached.loaded else "its tokens are refused", e)
                return
            cached.keys, cached.loaded = keys, True

    async def _load(self, issuer: Issuer) -> list[dict[str, Any]]:
        if issuer.jwks_file is not None:
            try:
                raw = await asyncio.to_thread(Path(issuer.jwks_file).read_bytes)
            except OSError as e:
                raise JwksError(f"cannot read {issuer.jwks_file}: {e.strerror}") from e
        else:
            assert issuer.jwks_url is not None
            raw = await self._fetch(issuer.jwks_url)
        return parse_jwks(raw, where=issuer.jwks_file or issuer.jwks_url or "")

    async def _fetch(self, url: str) -> bytes:
        try:
            async with self._client.stream("GET", url, headers={"Accept": "application/json"}) as response:
                if response.status_code != 200:
                    raise JwksError(f"GET {url} answered {response.status_code}")
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_JWKS_BYTES:
                        raise JwksError(f"GET {url} answered more than {MAX_JWKS_BYTES} bytes")
                return bytes(body)
        except httpx.HTTPError as e:
            raise JwksError(f"GET {url} failed: {type(e).__name__}") from e

    async def close(self) -> None:
        await self._client.aclose()


def parse_jwks(raw: bytes, *, where: str) -> list[dict[str, Any]]:
    """The usable signing keys of a JWKS document; keys of other types or uses are skipped, the rest kept."""
    try:
        doc = json.loads(raw)
    except ValueError as e:
        raise JwksError(f"{where} is not JSON") from e
    keys = doc.get("keys") if isinstance(doc, dict) else None
    if not isinstance(keys, list):
        raise JwksError(f"{where} is not a JWK set (no \"keys\" array)")
    usable = [k for k in keys if isinstance(k, dict) and any(fits(k, alg) for alg in ALGORITHMS)]
    if len(usable) < len(keys):
        log.info("JWKS %s: %d of %d keys are not public signing keys of an accepted type and are ignored",
                 where, len(keys) - len(usable), len(keys))
    return usable


def _pick(keys: list[dict[str, Any]], kid: str | None, alg: str) -> dict[str, Any] | None:
    if kid is not None:
        return next((k for k in keys if k.get("kid") == kid), None)
    fitting = [k for k in keys if fits(k, alg)]
    return fitting[0] if len(fitting) == 1 else None
