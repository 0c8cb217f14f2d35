"""The hot path to a Streamable HTTP upstream: a ``tools/call`` on the session the ``mcp`` SDK's
client opened is sent as one HTTP/1.1 POST over a small pool of kept-alive connections, its answer
read as JSON (or as the request's SSE stream) with orjson, no pydantic models on the way.

The SDK keeps the handshake, the GET stream (server notifications), progress, and every other
request; this path only carries calls without a progress callback, on the same session id and
protocol version the SDK negotiated, with the same headers (a stored credential's among them).

Contract: :meth:`DirectHttp.post` returns the JSON-RPC message whose ``id`` is the request's, or
raises :class:`HttpStatusError` for an answer that is not 200, :class:`NotJsonRpcError` for a body
that holds no such message, ``OSError``/``asyncio.IncompleteReadError`` when the connection fails.
A pooled connection that the server closed while idle is retried once on a new connection (before
any answer byte, so the server never saw the request).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from typing import Any
from urllib.parse import urlsplit

import orjson

POOL_MAX = 16
MAX_HEADER_LINES = 100


class HttpStatusError(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


class NotJsonRpcError(Exception):
    """The body was not the JSON-RPC answer to the request."""


_Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class DirectHttp:
    def __init__(self, url: str, headers: dict[str, str]) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.tls = ssl.create_default_context() if parts.scheme == "https" else None
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        host = parts.netloc.rpartition("@")[2]
        fixed = {"Host": host, "Content-Type": "application/json", "Accept": "application/json, text/event-stream",
                 **headers}
        self._head = f"POST {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fixed.items())
        self._idle: list[_Conn] = []

    async def post(self, message: dict[str, Any]) -> dict[str, Any]:
        body = orjson.dumps(message)
        request = (self._head + f"Content-Length: {len(body)}\r\n\r\n").encode("latin-1") + body
        conn, reused = await self._conn()
        try:
            answer = await self._exchange(conn, request, message["id"], reused)
        except _StaleError:
            self._close(conn)
            conn = await self._open()
            answer = await self._exchange(conn, request, message["id"], False)
        except BaseException:
            self._close(conn)
            raise
        return answer

    async def _exchange(self, conn: _Conn, request: bytes, rid: Any, reused: bool) -> dict[str, Any]:
        reader, writer = conn
        writer.write(request)
        try:
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")  # status line and headers in one read
        except (ConnectionError, OSError) as e:
            if reused:
                raise _StaleError from e
            raise
        except asyncio.IncompleteReadError as e:
            if e.partial:
                raise
            if reused:
                raise _StaleError from e
            raise ConnectionResetError("the upstream closed the connection before answering") from e
        except asyncio.LimitOverrunError as e:
            raise NotJsonRpcError("an answer head past 64 KiB") from e
        status, headers = _head(head)
        raw = await _body(reader, headers)
        keep = headers.get("connection", "").lower() != "close"
        if keep and len(self._idle) < POOL_MAX:
            self._idle.append(conn)
        else:
            self._close(conn)
        if status != 200:
            raise HttpStatusError(status)
        return _answer(raw, headers.get("content-type", ""), rid)

    async def _conn(self) -> tuple[_Conn, bool]:
        while self._idle:
            conn = self._idle.pop()
            if not conn[1].is_closing() and not conn[0].at_eof():
                return conn, True
            self._close(conn)
        return await self._open(), False

    async def _open(self) -> _Conn:
        return await asyncio.open_connection(self.host, self.port, ssl=self.tls)

    @staticmethod
    def _close(conn: _Conn) -> None:
        with contextlib.suppress(Exception):
            conn[1].close()

    def close(self) -> None:
        while self._idle:
            self._close(self._idle.pop())


class _StaleError(Exception):
    """A kept-alive connection the server had closed: nothing of the request was answered."""


def _head(head: bytes) -> tuple[int, dict[str, str]]:
    """The status code and the (lower-cased) headers of an answer's head."""
    lines = head[:-4].split(b"\r\n")
    if len(lines) > MAX_HEADER_LINES + 1:
        raise NotJsonRpcError("too many header lines")
    parts = lines[0].split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise NotJsonRpcError("not an HTTP/1.1 answer")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers


async def _body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        chunks: list[bytes] = []
        while True:
            size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            chunks.append(await reader.readexactly(size))
            await reader.readexactly(2)
    length = headers.get("content-length")
    if length is None or not length.isdigit():
        raise NotJsonRpcError("an answer with neither a length nor chunks")
    return await reader.readexactly(int(length))


def _answer(raw: bytes, content_type: str, rid: Any) -> dict[str, Any]:
    if content_type.startswith("text/event-stream"):
        for message in _sse_messages(raw):
            if message.get("id") == rid and ("result" in message or "error" in message):
                return message
        raise NotJsonRpcError("the event stream ended without the answer")
    try:
        message = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise NotJsonRpcError("the body is not JSON") from e
    if not isinstance(message, dict) or message.get("id") != rid or not ("result" in message or "error" in message):
        raise NotJsonRpcError("the body is not the JSON-RPC answer to the request")
    return message


def _sse_messages(raw: bytes) -> list[dict[str, Any]]:
    found = []
    for event in raw.replace(b"\r\n", b"\n").split(b"\n\n"):
        data = b"\n".join(line[5:].lstrip(b" ") for line in event.split(b"\n") if line.startswith(b"data:"))
        if data:
            with contextlib.suppress(orjson.JSONDecodeError):
                message = orjson.loads(data)
                if isinstance(message, dict):
                    found.append(message)
    return found
