"""The hot path of the agents' endpoint: a handshake-era ``tools/call`` POST on an open session,
answered with one JSON body, is served here directly (orjson in, the gate, orjson out) instead of
through the ``mcp`` SDK's session machinery; everything else goes to the SDK unchanged.

A request is taken only when every one of these holds, else it is handed to the SDK with its body
replayed, byte for byte, so the SDK gives its own answer (and its own errors):

- ``POST``, JSON answers configured (``json_response``), ``Content-Type: application/json``,
  ``Accept`` naming ``application/json``;
- ``Mcp-Session-Id`` of a session the SDK opened (no owner credential bound to it), not terminated,
  and ``Mcp-Protocol-Version`` one of the handshake versions (the 2026-07-28 era stays with the SDK);
- the body is one JSON-RPC request ``tools/call`` with a string or integer id, a string ``name``,
  ``arguments`` an object or absent, and no ``progressToken`` (progress needs the SDK's streams).

The answer is what the SDK would send: ``{"jsonrpc": "2.0", "id": ..., "result": ...}`` or the
JSON-RPC error the gate raised. A ``notifications/cancelled`` for a call served here cancels it (the
call is answered ``-32800 Request cancelled``, as the SDK answers a cancelled request of this era), and
so does the client closing the request's connection.
The session's idle clock is held while a call is in flight, as the SDK holds it.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from typing import Any

import anyio
import orjson
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.shared.exceptions import MCPError
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from prometheus_client import CollectorRegistry, Gauge
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.gateway.gate import Call, Gateway

log = logging.getLogger("sealtrail.gateway")
REQUEST_CANCELLED = -32800
INTERNAL_ERROR = -32603
_VERSIONS = frozenset(v.encode() for v in HANDSHAKE_PROTOCOL_VERSIONS)
CallMaker = Callable[[str, str | None, dict[str, Any], Scope], Call]


class FastCalls:
    """ASGI app in front of the SDK's session manager (behind authentication)."""

    def __init__(self, sdk: ASGIApp, manager: StreamableHTTPSessionManager, gateway: Gateway, *,
                 json_response: bool, max_body: int, make_call: CallMaker, registry: CollectorRegistry) -> None:
        self.sdk, self.manager, self.gateway = sdk, manager, gateway
        self.json_response, self.max_body, self.make_call = json_response, max_body, make_call
        self._inflight: dict[tuple[str, str], asyncio.Task[dict[str, Any]]] = {}
        lean = Gauge("sealtrail_gateway_lean_calls", "tools/call requests carried by the lean paths (agent: "
                     "served without the mcp SDK; upstream: sent without it)", ["side"], registry=registry)
        lean.labels("agent").set_function(lambda: self.served)
        lean.labels("upstream").set_function(lambda: sum(u.direct_calls for u in gateway.upstreams.values()))
        self.served = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = _eligible_headers(scope) if self.json_response else None
        session = headers.get(b"mcp-session-id") if headers is not None else None
        transport = self._transport(session.decode("latin-1")) if session is not None else None
        if transport is None:
            await self.sdk(scope, receive, send)
            return
        body = await _read_body(receive, self.max_body)
        message = _parse(body) if body is not None else None
        sid = session.decode("latin-1") if session is not None else ""
        if message is not None and message.get("method") == "notifications/cancelled" \
                and self._cancel(sid, message.get("params")):
            await _respond(send, 202, b"", sid)
            return
        if message is None or not _is_plain_call(message):
            await self.sdk(scope, _replay(body, receive), send)
            return
        await self._serve(transport, sid, message, scope, receive, send)

    def _transport(self, session: str) -> Any:
        transport = self.manager._server_instances.get(session)
        if transport is None or transport.is_terminated or self.manager._session_owners.get(session) is not None:
            return None
        return transport

    def _cancel(self, session: str, params: Any) -> bool:
        rid = params.get("requestId") if isinstance(params, dict) else None
        task = self._inflight.get((session, _key(rid))) if isinstance(rid, str | int) else None
        if task is None:
            return False
        task.cancel()
        return True

    async def _serve(self, transport: Any, session: str, message: dict[str, Any], scope: Scope, receive: Receive,
                     send: Send) -> None:
        rid = message["id"]
        params = message["params"]
        call = self.make_call(str(params["name"]), session, params, scope)
        key = (session, _key(rid))
        task = asyncio.create_task(self.gateway.call_tool(call))
        self._inflight[key] = task
        watcher = asyncio.create_task(_cancel_on_disconnect(receive, task))
        with _holding(transport):
            try:
                result = await asyncio.shield(task)
                answer: dict[str, Any] = {"jsonrpc": "2.0", "id": rid, "result": result}
            except MCPError as e:
                answer = {"jsonrpc": "2.0", "id": rid, "error": e.error.model_dump(exclude_none=True)}
            except asyncio.CancelledError:
                if not task.cancelled():  # the HTTP request itself went away: stop the call too
                    task.cancel()
                    raise
                answer = {"jsonrpc": "2.0", "id": rid, "error": {"code": REQUEST_CANCELLED,
                                                                  "message": "Request cancelled"}}
            except Exception as e:  # the gate's own failure: no internals on the wire
                log.exception("tools/call failed inside the gateway: %s", type(e).__name__)
                answer = {"jsonrpc": "2.0", "id": rid, "error": {"code": INTERNAL_ERROR,
                                                                  "message": "Internal server error"}}
            finally:
                self._inflight.pop(key, None)
                watcher.cancel()
        self.served += 1
        await _respond(send, 200, orjson.dumps(answer), session)


async def _cancel_on_disconnect(receive: Receive, task: asyncio.Task[Any]) -> None:
    """A client that gives up closes the request's connection, which may come before (or instead
    of) its ``notifications/cancelled``: the call is cancelled then too."""
    while (await receive())["type"] != "http.disconnect":
        pass
    task.cancel()


class _holding:
    """While a call is in flight the session's idle deadline is suspended (as the SDK does)."""

    def __init__(self, transport: Any) -> None:
        self.transport = transport

    def __enter__(self) -> None:
        t = self.transport
        if t.idle_scope is not None and t._idle_timeout is not None:
            t._requests_in_flight += 1
            t.idle_scope.deadline = math.inf

    def __exit__(self, *exc: object) -> None:
        t = self.transport
        if t.idle_scope is not None and t._idle_timeout is not None:
            t._requests_in_flight -= 1
            if not t._requests_in_flight:
                t.idle_scope.deadline = anyio.current_time() + t._idle_timeout


def _eligible_headers(scope: Scope) -> dict[bytes, bytes] | None:
    if scope.get("method") != "POST":
        return None
    headers = dict(scope.get("headers", ()))
    if headers.get(b"mcp-protocol-version") not in _VERSIONS:
        return None
    if headers.get(b"content-type", b"").split(b";")[0].strip().lower() != b"application/json":
        return None
    accept = headers.get(b"accept", b"").lower()
    if b"application/json" not in accept and b"*/*" not in accept and b"application/*" not in accept:
        return None
    return headers


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None past ``limit`` bytes (the SDK then refuses it itself)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        chunks.append(chunk)
        if size > limit:
            return None
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes | None, receive: Receive) -> Receive:
    """A receive that gives ``body`` once, then the real channel (disconnects)."""
    if body is None:
        return receive
    sent = False

    async def again() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again


def _parse(body: bytes) -> dict[str, Any] | None:
    try:
        message = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return message if isinstance(message, dict) else None


def _is_plain_call(m: dict[str, Any]) -> bool:
    rid, params = m.get("id"), m.get("params")
    if m.get("jsonrpc") != "2.0" or m.get("method") != "tools/call" or isinstance(rid, bool):
        return False
    if not isinstance(rid, str | int) or not isinstance(params, dict) or not isinstance(params.get("name"), str):
        return False
    if not isinstance(params.get("arguments", {}), dict):
        return False
    meta = params.get("_meta")
    return meta is None or (isinstance(meta, dict) and "progressToken" not in meta)


def _key(rid: Any) -> str:
    return f"{type(rid).__name__}:{rid}"


async def _respond(send: Send, status: int, body: bytes, session: str) -> None:
    headers = [(b"content-length", str(len(body)).encode()), (b"mcp-session-id", session.encode("latin-1"))]
    if body:
        headers.append((b"content-type", b"application/json"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})

