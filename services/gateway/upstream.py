"""One upstream MCP server, reached over stdio (a command the gateway starts and restarts) or
Streamable HTTP (a URL), through the ``mcp`` SDK's client.

The connection lives in a task of its own (the SDK's transports hold task groups that must be
entered and left in one task). A connection that fails is dropped and the next call reconnects, so
a crashed stdio server is restarted on demand. Results are kept as the raw JSON the server sent.

The server's stored credential (see :mod:`services.gateway.credentials`) is fetched at each connect:
HTTP headers on every request of a Streamable HTTP connection, environment variables of a stdio
process. An HTTP 401 or 403 from the upstream is :class:`CredentialRejectedError` (the connection is
dropped, so the next call connects with the then-current credential), never a generic failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import os
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from typing import TYPE_CHECKING, Any

import anyio
import httpx2
import mcp_types as types
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import MCP_DEFAULT_SSE_READ_TIMEOUT, MCP_DEFAULT_TIMEOUT
from mcp.shared.dispatcher import ProgressFnT
from mcp.shared.exceptions import MCPError
from pydantic import TypeAdapter, ValidationError

from services.gateway.config import ServerConfig
from services.gateway.errors import CredentialRejectedError, UpstreamError, UpstreamTimeoutError
from services.gateway.upstream_http import DirectHttp, HttpStatusError, NotJsonRpcError

if TYPE_CHECKING:
    from services.gateway.credentials import Credential

log = logging.getLogger("sealtrail.gateway")
_RAW: Any = TypeAdapter(dict[str, Any])
_CLOSED = (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream)
CONNECT_TIMEOUT_S = 30.0
CredentialSource = Callable[[str], Awaitable["Credential | None"]]
"""Server name -> its current credential in clear (or None), asked at each connect."""


class _CredentialAuth(httpx2.Auth):
    """Adds the credential's headers to every request and notes a 401/403 answer."""

    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = headers
        self.rejected: int | None = None

    def auth_flow(self, request: httpx2.Request) -> Generator[httpx2.Request, httpx2.Response, None]:
        request.headers.update(self.headers)
        response = yield request
        if response.status_code in (401, 403):
            self.rejected = response.status_code


class Upstream:
    def __init__(self, cfg: ServerConfig, *, on_tools_changed: Callable[[str], Awaitable[None]] | None = None,
                 credentials: CredentialSource | None = None, connect_timeout_s: float = CONNECT_TIMEOUT_S) -> None:
        self.cfg = cfg
        self._on_tools_changed = on_tools_changed
        self._credentials = credentials
        self._credential: Credential | None = None
        self._auth: _CredentialAuth | None = None
        self._connect_timeout_s = connect_timeout_s
        self._client: Client | None = None
        self._holder: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._lock = asyncio.Lock()
        self._tools: list[dict[str, Any]] | None = None
        self.connects = 0
        self.garbage = 0
        self._session_id: str | None = None
        self._json_answers = False
        """The upstream answered its handshake with a JSON body (not an SSE stream): the lean path may
        carry its calls (an SSE answer can hold requests to the client, which only the SDK answers)."""
        self._direct: DirectHttp | None = None
        self._ids = itertools.count(1)
        self.direct_calls = 0
        """Calls sent on the lean path."""
        self.on_notification: Callable[[str, str, dict[str, Any]], Awaitable[None]] | None = None
        """Told (server, method, params) of the upstream's resource and prompt notifications."""
        """Messages from the upstream that were not JSON-RPC."""

    @property
    def name(self) -> str:
        return self.cfg.name

    @property
    def connected(self) -> bool:
        return self._client is not None

    @property
    def credential_version(self) -> int | None:
        """The version of the credential the open connection was made with (None: none or not connected)."""
        return None if self._credential is None else self._credential.version

    async def tools(self) -> list[dict[str, Any]]:
        """The upstream's tools as it listed them (cached until it says its list changed)."""
        if self._tools is None:
            tools: list[dict[str, Any]] = []
            cursor: str | None = None
            for _ in range(100):
                params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
                page = await self._request(types.ListToolsRequest(params=params), self._connect_timeout_s)
                tools.extend(t for t in page.get("tools", []) if isinstance(t, dict) and isinstance(t.get("name"), str))
                cursor = page.get("nextCursor")
                if not cursor:
                    break
            self._tools = tools
        return self._tools

    async def relist(self) -> list[dict[str, Any]]:
        """List the tools again now, on the open connection (or a new one), and keep the new list."""
        self._tools = None
        return await self.tools()

    async def call(self, tool: str, arguments: dict[str, Any] | None, meta: dict[str, Any] | None,
                   timeout_s: float, *, on_progress: ProgressFnT | None = None) -> dict[str, Any]:
        """Forward one ``tools/call``; the result as the upstream sent it.

        Raises :class:`UpstreamTimeoutError` after ``timeout_s``, :class:`UpstreamError` when the server
        crashed, answered garbage or is unreachable, and ``MCPError`` for a JSON-RPC error it returned."""
        if on_progress is None and self.cfg.url is not None:
            direct = await self._direct_http()
            if direct is not None:
                self.direct_calls += 1
                try:
                    return await self._direct_call(direct, tool, arguments, meta, timeout_s)
                except _SessionGoneError:  # the server forgot the session (restarted): it saw nothing
                    direct = await self._direct_http()
                    if direct is not None:
                        return await self._direct_call(direct, tool, arguments, meta, timeout_s, last=True)
        params = types.CallToolRequestParams(name=tool, arguments=arguments, _meta=meta)
        return await self._request(types.CallToolRequest(params=params), timeout_s, on_progress)

    async def _direct_http(self) -> DirectHttp | None:
        """The lean path on the SDK's session (see :mod:`services.gateway.upstream_http`), once open."""
        client = await self._connected()
        if self._direct is None and self._session_id is not None and self._json_answers and self.cfg.url is not None:
            headers = {"Mcp-Session-Id": self._session_id, "Mcp-Protocol-Version": client.protocol_version,
                       **(self._auth.headers if self._auth is not None else {})}
            self._direct = DirectHttp(self.cfg.url, headers)
        return self._direct

    async def _direct_call(self, direct: DirectHttp, tool: str, arguments: dict[str, Any] | None,
                           meta: dict[str, Any] | None, timeout_s: float, *, last: bool = False) -> dict[str, Any]:
        params: dict[str, Any] = {"name": tool}
        if arguments is not None:
            params["arguments"] = arguments
        if meta:
            params["_meta"] = meta
        try:
            async with asyncio.timeout(timeout_s):
                answer = await direct.post({"jsonrpc": "2.0", "id": f"sg-{next(self._ids)}", "method": "tools/call",
                                            "params": params})
        except TimeoutError as e:
            raise UpstreamTimeoutError(f"server {self.name} did not answer within {timeout_s:g} s") from e
        except HttpStatusError as e:
            if e.status in (401, 403) and self._auth is not None:
                self._auth.rejected = e.status
                await self._rejected(e)
            await self._drop()  # the next call opens a new session
            if e.status == 404 and not last:
                raise _SessionGoneError from e
            raise UpstreamError(f"server {self.name} answered HTTP {e.status}") from e
        except NotJsonRpcError as e:
            self.garbage += 1
            raise UpstreamError(f"server {self.name} answered something that is not JSON-RPC: {e}") from e
        except (OSError, asyncio.IncompleteReadError) as e:
            await self._drop()
            raise UpstreamError(f"server {self.name} closed the connection mid-call or is unreachable: "
                                f"{type(e).__name__}") from e
        error, result = answer.get("error"), answer.get("result")
        if isinstance(error, dict):
            raise MCPError(int(error.get("code", 0)), str(error.get("message", "")), error.get("data"))
        if not isinstance(result, dict):
            raise UpstreamError(f"server {self.name} answered with a result that is not valid MCP (not an object)")
        return result

    async def send(self, request: Any, timeout_s: float) -> dict[str, Any]:
        """Forward one request other than ``tools/call`` (a ``mcp_types`` request); errors as :meth:`call`."""
        return await self._request(request, timeout_s)

    async def capabilities(self) -> dict[str, Any]:
        """What the upstream declared at its handshake (``resources``, ``prompts``, ``completions``, ...)."""
        client = await self._connected()
        caps: dict[str, Any] = client.server_capabilities.model_dump(by_alias=True, exclude_none=True)
        return caps

    def _note_session(self, session_id: str, json_answers: bool) -> None:
        if session_id != self._session_id:
            self._session_id, self._direct, self._json_answers = session_id, None, json_answers

    async def _request(self, request: Any, timeout_s: float, on_progress: ProgressFnT | None = None
                       ) -> dict[str, Any]:
        client = await self._connected()
        garbage = self.garbage
        try:
            async with asyncio.timeout(timeout_s):
                raw: dict[str, Any] = await client.session.send_request(
                    request, _RAW, request_read_timeout_seconds=timeout_s, progress_callback=on_progress)
                return raw
        except TimeoutError as e:
            if self.garbage != garbage:
                raise UpstreamError(f"server {self.name} sent output that is not JSON-RPC and no answer within "
                                    f"{timeout_s:g} s") from e
            raise UpstreamTimeoutError(f"server {self.name} did not answer within {timeout_s:g} s") from e
        except MCPError as e:
            await self._rejected(e)
            if e.code in (types.CONNECTION_CLOSED,):
                await self._drop()
                raise UpstreamError(f"server {self.name} closed the connection mid-call (it crashed or exited)") from e
            if e.code == types.REQUEST_TIMEOUT:
                raise UpstreamTimeoutError(f"server {self.name} did not answer within {timeout_s:g} s") from e
            raise
        except ValidationError as e:
            raise UpstreamError(f"server {self.name} answered with a result that is not valid MCP "
                                f"({e.error_count()} errors)") from e
        except (OSError, *_CLOSED) as e:
            await self._drop()
            raise UpstreamError(f"server {self.name} is unreachable: {type(e).__name__}") from e

    async def _connected(self) -> Client:
        if self._client is not None and self._holder is not None and not self._holder.done():
            return self._client
        async with self._lock:
            if self._client is not None and self._holder is not None and not self._holder.done():
                return self._client
            await self._drop()
            self._stop = asyncio.Event()
            self._credential = None if self._credentials is None else await self._credentials(self.name)
            self._auth = None
            ready: asyncio.Future[Client] = asyncio.get_running_loop().create_future()
            self._holder = asyncio.create_task(self._hold(ready), name=f"gateway-upstream-{self.name}")
            try:
                async with asyncio.timeout(self._connect_timeout_s):
                    self._client = await ready
            except TimeoutError as e:
                await self._drop()
                raise UpstreamError(f"server {self.name} did not complete the MCP handshake within "
                                    f"{self._connect_timeout_s:g} s") from e
            except Exception as e:
                await self._rejected(e)
                await self._drop()
                raise UpstreamError(f"server {self.name} could not be started or reached: {type(e).__name__}: "
                                    f"{str(e)[:200]}") from e
            self.connects += 1
            self._tools = None
            return self._client

    async def _hold(self, ready: asyncio.Future[Client]) -> None:
        try:
            with open(os.devnull, "w") as sink:  # noqa: ASYNC230 - an upstream's stderr may echo arguments
                async with Client(self._transport(sink), mode="legacy", cache=None,
                                  message_handler=self._on_message) as client:
                    if not ready.done():
                        ready.set_result(client)
                    await self._stop.wait()
        except BaseException as e:  # the connection died: the next call reconnects
            if not ready.done():
                ready.set_exception(e if isinstance(e, Exception) else RuntimeError(type(e).__name__))
            if isinstance(e, asyncio.CancelledError):
                raise
            log.warning("upstream %s connection ended: %s", self.name, type(e).__name__)
        finally:
            self._client = None

    def _transport(self, sink: Any) -> Any:
        credential = self._credential
        if self.cfg.url is not None:
            self._auth = _CredentialAuth({} if credential is None else credential.headers())
            return _http(self.cfg.url, self._auth, self._note_session)
        assert self.cfg.command is not None
        env = {**self.cfg.env, **({} if credential is None else credential.env())}
        params = StdioServerParameters(command=self.cfg.command[0], args=list(self.cfg.command[1:]), env=env or None)
        return stdio_client(params, errlog=sink)

    async def _rejected(self, cause: BaseException) -> None:
        """Raise CredentialRejectedError when the upstream answered 401/403; the connection is dropped,
        so the next call connects with the credential current then."""
        if self._auth is None or self._auth.rejected is None:
            return
        status, self._auth.rejected = self._auth.rejected, None
        version = "no credential" if self._credential is None else f"credential v{self._credential.version}"
        await self._drop()
        raise CredentialRejectedError(f"server {self.name} rejected the gateway's {version} (HTTP {status})",
                                      status=status) from cause

    async def _on_message(self, message: Any) -> None:
        if isinstance(message, Exception):
            self.garbage += 1
            log.warning("upstream %s sent a message that is not valid MCP: %s", self.name, type(message).__name__)
            return
        root = getattr(message, "root", message)
        method = getattr(root, "method", None)
        if isinstance(method, str) and method.startswith(("notifications/resources/", "notifications/prompts/")) \
                and self.on_notification is not None:
            params = getattr(root, "params", None)
            raw = params.model_dump(by_alias=True, exclude_none=True) if params is not None else {}
            await self.on_notification(self.name, method, raw)
        if method == "notifications/tools/list_changed":
            self._tools = None
            if self._on_tools_changed is not None:
                await self._on_tools_changed(self.name)

    async def _drop(self) -> None:
        self._client = None
        if self._direct is not None:
            self._direct.close()
        self._session_id, self._direct = None, None
        self._tools = None
        holder, self._holder = self._holder, None
        if holder is not None and not holder.done():
            self._stop.set()
            try:
                async with asyncio.timeout(5):
                    await asyncio.shield(holder)
            except (TimeoutError, Exception):
                holder.cancel()
                with contextlib.suppress(BaseException):
                    await holder

    async def close(self) -> None:
        await self._drop()


class _SessionGoneError(Exception):
    """HTTP 404 on the lean path: the upstream no longer knows the session."""


@contextlib.asynccontextmanager
async def _http(url: str, auth: httpx2.Auth, on_session: Callable[[str, bool], None]) -> AsyncIterator[Any]:
    async def session_of(response: httpx2.Response) -> None:  # the lean path reuses the SDK's session
        if session := response.headers.get("mcp-session-id"):
            on_session(session, response.headers.get("content-type", "").startswith("application/json"))

    async with _http_client(auth) as http, streamable_http_client(url, http_client=http) as streams:
        http.event_hooks["response"].append(session_of)
        yield streams


@functools.cache
def _tls() -> ssl.SSLContext:
    return ssl.create_default_context()


def _http_client(auth: httpx2.Auth) -> httpx2.AsyncClient:
    """The client ``create_mcp_http_client`` makes (the same timeouts), with one TLS context for the
    process: building a context loads the CA store, 70-100 ms of every new connection otherwise
    (each health check connects anew)."""
    return httpx2.AsyncClient(auth=auth, verify=_tls(),
                              timeout=httpx2.Timeout(MCP_DEFAULT_TIMEOUT, read=MCP_DEFAULT_SSE_READ_TIMEOUT))
