"""The MCP server agents talk to: one ``mcp`` low-level server whose tools are the upstreams'
allowed tools, named ``SERVER__TOOL``.

Served over Streamable HTTP (the agent comes from its authenticated bearer key) or stdio (the
agent is the one named on the command line). Beside tools, resources, prompts and completions are
forwarded under the same policy (:mod:`services.gateway.forward`); a request's cancellation
reaches the upstream call; an upstream's ``notifications/tools/list_changed`` is passed on to every
open session. A handshake-era ``tools/call`` over HTTP with JSON answers is usually served by
:mod:`services.gateway.fastpath` before it reaches this server.
"""

from __future__ import annotations

import logging
import weakref
from typing import Any

import mcp_types as types
from mcp.server.connection import Connection
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import NotificationOptions, Server
from mcp.server.session import ServerSession
from mcp.shared.dispatcher import ProgressFnT
from mcp.shared.exceptions import MCPError
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from services.gateway import forward, holdprompt
from services.gateway.gate import Call, Gateway

log = logging.getLogger("sealtrail.gateway")
AGENT_SCOPE_KEY = "sealtrail.agent"
GRANT_SCOPE_KEY = "sealtrail.grant"
"""Set beside the agent when it came with an OAuth access token: the tools the token's scopes allow."""


class Sessions:
    """Open agent sessions, so an upstream's tool-list change can be passed on.

    The SDK's ``ServerSession`` lives for one request only; what lives as long as the agent's session
    is its ``Connection`` (held weakly here: a closed session is forgotten with it). A session is
    known from its first ``tools/list`` (or a ``tools/call`` the SDK serves rather than the fast path)."""

    def __init__(self) -> None:
        self._open: weakref.WeakSet[Connection] = weakref.WeakSet()

    def seen(self, session: ServerSession) -> None:
        connection = getattr(session, "_connection", None)
        if isinstance(connection, Connection):
            self._open.add(connection)

    async def tools_changed(self, _server: str) -> None:
        for connection in list(self._open):
            try:
                await connection.send_tool_list_changed()
            except Exception as e:  # a closed session: forget it
                log.info("tool-list change not delivered to a closed session: %s", type(e).__name__)
                self._open.discard(connection)


def build_server(gateway: Gateway, sessions: Sessions, *, stdio_agent: str | None = None,
                 stdio_session: str | None = None) -> Server[Any]:
    """The agent-facing MCP server. Over HTTP the agent is read from the request the auth layer
    admitted; over stdio it is ``stdio_agent``."""

    def who(ctx: ServerRequestContext[Any, Any]) -> tuple[str, str | None, frozenset[str] | None]:
        sessions.seen(ctx.session)
        if stdio_agent is not None:
            return stdio_agent, stdio_session, None
        request = ctx.request
        agent = request.scope.get(AGENT_SCOPE_KEY) if request is not None else None
        if not isinstance(agent, str):  # unreachable behind the auth layer; refuse rather than guess
            raise PermissionError("no authenticated agent")
        grant = request.scope.get(GRANT_SCOPE_KEY) if request is not None else None
        session = request.headers.get("mcp-session-id") if request is not None else None
        return agent, session, grant if isinstance(grant, frozenset) else None

    async def list_tools(ctx: ServerRequestContext[Any, Any], _params: types.PaginatedRequestParams) -> dict[str, Any]:
        agent, session, grant = who(ctx)
        listing: dict[str, Any] = {"tools": await gateway.list_tools(agent, session, grant)}
        if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:  # per agent and policy: never cached for others
            listing.update(resultType="complete", ttlMs=0, cacheScope="private")
        return listing

    async def call_tool(ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams) -> dict[str, Any]:
        agent, session, grant = who(ctx)
        raw = dict(ctx.params or {})
        meta = raw.get("_meta")
        if (stopped := holdprompt.declined(raw)) is not None:
            raise holdprompt.stopped_waiting(stopped)

        async def once() -> dict[str, Any]:
            return await gateway.call_tool(Call(agent=agent, session=session, name=params.name, grant=grant,
                                                arguments=raw.get("arguments"), meta=meta, progress=_relay(ctx, meta)))

        try:
            result = await once()
        except MCPError as e:  # a hold outlasting hold_seconds: ask a client that can be asked to keep waiting
            if not holdprompt.pending(e):
                raise
            if (ask := holdprompt.input_required(ctx, e)) is not None:
                return ask
            result = await holdprompt.keep_waiting(ctx, e, once)
        if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS and "resultType" not in result:
            # upstreams speak the handshake era; a 2026-07-28 agent needs the result's type
            return {**result, "resultType": "complete"}
        return result

    server: Server[Any] = Server("sealtrail-gateway", version="1", instructions=(
        "Sealtrail gateway: tools of several MCP servers, named SERVER__TOOL, under one policy. Every call is "
        "recorded in a tamper-evident ledger."))
    server.add_request_handler("tools/list", types.PaginatedRequestParams, list_tools)
    server.add_request_handler("tools/call", types.CallToolRequestParams, call_tool)
    forward.register(server, forward.Forwarder(gateway, gateway.metrics.registry), who)
    return server


def call_from_scope(name: str, session: str | None, params: dict[str, Any], scope: Any) -> Call:
    """A ``tools/call`` served by the fast path (:mod:`services.gateway.fastpath`), with the agent and
    grant the auth layer put in the ASGI scope, as ``who`` reads them for the SDK's path."""
    agent = scope.get(AGENT_SCOPE_KEY)
    if not isinstance(agent, str):  # unreachable behind the auth layer; refuse rather than guess
        raise PermissionError("no authenticated agent")
    grant = scope.get(GRANT_SCOPE_KEY)
    meta = params.get("_meta")
    return Call(agent=agent, session=session, name=name, grant=grant if isinstance(grant, frozenset) else None,
                arguments=params.get("arguments"), meta=meta if isinstance(meta, dict) else None)


def _relay(ctx: ServerRequestContext[Any, Any], meta: Any) -> ProgressFnT | None:
    """Pass the upstream's progress notifications on to the agent, under the agent's own token."""
    token = meta.get("progressToken") if isinstance(meta, dict) else None
    if not isinstance(token, str | int) or isinstance(token, bool):
        return None
    request_id = None if ctx.request_id is None else str(ctx.request_id)

    async def relay(progress: float, total: float | None, message: str | None) -> None:
        await ctx.session.send_progress_notification(token, progress, total, message, related_request_id=request_id)

    return relay


def initialization_options(server: Server[Any]) -> Any:
    return server.create_initialization_options(NotificationOptions(tools_changed=True, resources_changed=True,
                                                                    prompts_changed=True))
