"""The HTTP edge of OAuth: admitting a bearer access token at ``/mcp``, the 401/403 answers with
their ``WWW-Authenticate`` challenge, and the protected resource metadata routes (RFC 9728).

The metadata is served at ``/.well-known/oauth-protected-resource``, at that path followed by the
configured resource URI's path (the form RFC 9728 section 3.1 makes clients ask for), and followed
by ``/mcp``. The URL in a challenge is built from the configured resource URI, never from the
request's Host header.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sealtrail.errors import AuthenticationError, SealtrailError
from sealtrail.infra.problems import problem_for
from services.gateway.oauth import METADATA_PATH, Grant, KeySource, OAuthConfig, challenge, metadata, validate

log = logging.getLogger("sealtrail.gateway")


class OAuthGuard:
    """Validates access tokens for one gateway and answers for the ones it refuses."""

    def __init__(self, cfg: OAuthConfig, keys: KeySource, *, name: str,
                 clock: Callable[[], float] = time.time) -> None:
        self.cfg, self.keys, self.name, self._clock = cfg, keys, name, clock

    async def admit(self, token: str) -> Grant:
        """The token's grant; raises the error :meth:`refusal` turns into the answer."""
        return await validate(token, cfg=self.cfg, keys=self.keys, now=self._clock())

    def refusal(self, error: SealtrailError | None = None) -> Response:
        """401 (no or a rejected token), 403 (``insufficient_scope``) or 503 (keys unavailable),
        as problem details with the challenge naming the metadata URL."""
        if error is None:
            error = AuthenticationError("an access token for this gateway or a gateway agent key is required "
                                        "(Authorization: Bearer ...)")
        else:
            log.info("access token refused: %s", error)  # the reason, never the token
        response = problem_for(error)
        if response.status_code in (401, 403):
            response.headers["WWW-Authenticate"] = challenge(self.cfg, error)
        return response

    def routes(self) -> list[Route]:
        paths = {METADATA_PATH, METADATA_PATH + "/mcp"}
        resource_path = urlsplit(self.cfg.resource).path.rstrip("/")
        if resource_path:
            paths.add(METADATA_PATH + resource_path)

        async def document(_: Request) -> Response:
            return JSONResponse(metadata(self.cfg, name=self.name), headers={"Cache-Control": "max-age=300"})

        return [Route(p, document, methods=["GET"]) for p in sorted(paths)]
