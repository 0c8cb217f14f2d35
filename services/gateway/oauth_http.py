"""The HTTP edge of OAuth: admitting a bearer access token at ``/mcp``, the 401/403 answers with
their ``WWW-Authenticate`` challenge, and the protected resource metadata routes (RFC 9728).

A ``tools/call`` for a tool outside the token's grant that another configured scope gives (and that
the policy would let the agent call with it) is answered 403 ``insufficient_scope`` naming that
scope, so a client can ask for it and retry (the MCP step-up authorization flow); the refusal is
first recorded through the gate like any other. A tool no scope would open is refused in the
JSON-RPC answer as before.

The metadata is served at ``/.well-known/oauth-protected-resource``, at that path followed by the
configured resource URI's path (the form RFC 9728 section 3.1 makes clients ask for), and followed
by ``/mcp``. The URL in a challenge is built from the configured resource URI, never from the
request's Host header.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import orjson
from mcp.shared.exceptions import MCPError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope

from sealtrail.errors import AuthenticationError, SealtrailError
from sealtrail.infra.problems import problem_for
from services.gateway.config import GatewayConfig
from services.gateway.gate import Call
from services.gateway.oauth import (
    METADATA_PATH,
    Grant,
    InsufficientScopeError,
    KeySource,
    OAuthConfig,
    challenge,
    covers,
    metadata,
    scope_for,
    validate,
)
from services.gateway.policy import decide, split_name

log = logging.getLogger("sealtrail.gateway")


class OAuthGuard:
    """Validates access tokens for one gateway and answers for the ones it refuses.

    ``policy`` gives the running configuration and ``gate`` is the call path that records a refusal:
    with both, a call outside the grant that a scope would open gets the step-up 403."""

    def __init__(self, cfg: OAuthConfig, keys: KeySource, *, name: str, clock: Callable[[], float] = time.time,
                 policy: Callable[[], GatewayConfig] | None = None,
                 gate: Callable[[Call], Awaitable[Any]] | None = None, max_body: int = 4 * 1024 * 1024) -> None:
        self.cfg, self.keys, self.name, self._clock = cfg, keys, name, clock
        self.policy, self.gate, self.max_body = policy, gate, max_body

    async def step_up(self, scope: Scope, receive: Receive, grant: Grant) -> tuple[Response | None, Receive]:
        """For a POSTed ``tools/call`` that another scope would open: the refusal is recorded through
        the gate and the 403 to send is returned. Otherwise None. Either way, a ``receive`` that
        gives the request body again (it has been read here)."""
        if scope.get("method") != "POST" or self.policy is None or self.gate is None:
            return None, receive
        body, first = await read_body(receive, self.max_body)
        replay = replaying(first, receive)
        call = _tool_call(body, scope, grant) if first.get("type") == "http.request" else None
        if call is None:
            return None, replay
        error = self._needed(call, grant)
        if error is None:
            return None, replay
        with contextlib.suppress(MCPError):  # denied there (insufficient scope) and recorded; never forwarded
            await self.gate(call)
        return self.refusal(error), replay

    def _needed(self, call: Call, grant: Grant) -> InsufficientScopeError | None:
        assert self.policy is not None
        split = split_name(call.name)
        if split is None or covers(grant.tools, *split):
            return None
        needed = scope_for(self.cfg, *split)
        if needed is None:
            return None
        policy = self.policy()
        if decide(policy, grant.agent, *split, grant.tools).reason != "insufficient_scope":
            return None
        if decide(policy, grant.agent, *split, grant.tools | set(self.cfg.scopes[needed])).decision == "deny":
            return None  # the scope would not open it: the agent's allow-list or the tool's mode refuses it
        return InsufficientScopeError(f"{call.name} needs the scope {needed}", scopes=(needed,))

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


async def read_body(receive: Receive, limit: int) -> tuple[bytes, Message]:
    """The request body up to ``limit`` bytes, and the message to give again (all of it, or the part
    read so far with ``more_body`` set when the body is longer, or a disconnect)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"", message
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        if not message.get("more_body", False) or size > limit:
            body = b"".join(chunks)
            more = bool(message.get("more_body", False))
            return (b"" if more else body), {"type": "http.request", "body": body, "more_body": more}


def replaying(first: Message, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return first
        return await receive()

    return replay


def _tool_call(body: bytes, scope: Scope, grant: Grant) -> Call | None:
    try:
        message = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return None
    if not isinstance(message, dict) or message.get("method") != "tools/call":
        return None
    params = message.get("params")
    name = params.get("name") if isinstance(params, dict) else None
    if not isinstance(params, dict) or not isinstance(name, str):
        return None
    session = next((v.decode("latin-1") for k, v in scope.get("headers", []) if k == b"mcp-session-id"), None)
    meta = params.get("_meta")
    return Call(agent=grant.agent, session=session, name=name, grant=grant.tools, arguments=params.get("arguments"),
                meta=meta if isinstance(meta, dict) else None)
