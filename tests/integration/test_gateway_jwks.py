"""The gateway's JWKS cache against a real JWKS endpoint on 127.0.0.1: it fetches, keeps the last
good set when the endpoint fails, refuses an oversized answer and does not follow redirects."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sealtrail.errors import UnavailableError
from services.gateway.oauth import Issuer
from services.gateway.oauth_jwks import JwksCache
from tests.support.oauth_issuer import JwksServer, TokenIssuer

ISS, AUD = "https://auth.example.com", "https://gw.example.com/mcp"


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def served() -> Iterator[JwksServer]:
    issuer = TokenIssuer(ISS, AUD)
    issuer.add_key("k1", "ES256")
    server = JwksServer(issuer)
    yield server
    server.stop()


async def test_fetch_failure_keeps_the_last_good_set(served: JwksServer) -> None:
    """A 500 on refetch keeps k1 verifying; the key the failed refetch would have brought is unknown."""
    clock = Clock()
    cache = JwksCache(cache_s=60, refetch_s=5, clock=clock)
    iss = Issuer(ISS, AUD, jwks_url=served.url)
    try:
        assert (await cache.key(iss, "k1", "ES256")) is not None and served.fetches == 1
        served.mode = "error"
        served.issuer.add_key("k2", "EdDSA")
        clock.t += 5
        assert await cache.key(iss, "k2", "EdDSA") is None and served.fetches == 2
        assert await cache.key(iss, "k1", "ES256") is not None
        clock.t += 60  # past the cache time: the refetch fails again and the set stays
        assert await cache.key(iss, "k1", "ES256") is not None and served.fetches == 3
        served.mode = "ok"
        clock.t += 5
        assert await cache.key(iss, "k2", "EdDSA") is not None and served.fetches == 4
    finally:
        await cache.close()


@pytest.mark.parametrize("mode", ["error", "huge", "redirect"])
async def test_no_usable_answer_at_all_is_unavailable(served: JwksServer, mode: str) -> None:
    """With no good set ever fetched (500, more than 1 MiB, a redirect) the issuer's tokens get 503,
    and the next attempt waits for the refetch interval."""
    served.mode = mode
    clock = Clock()
    cache = JwksCache(cache_s=60, refetch_s=5, clock=clock)
    iss = Issuer(ISS, AUD, jwks_url=served.url)
    try:
        for _ in range(3):
            with pytest.raises(UnavailableError, match="cannot be had"):
                await cache.key(iss, "k1", "ES256")
        assert served.fetches == 1
    finally:
        await cache.close()
