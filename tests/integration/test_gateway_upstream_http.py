"""The lean upstream client against a small HTTP/1.1 server on 127.0.0.1 that answers as Streamable
HTTP servers do: JSON with a length, an SSE stream in chunks, an error status, garbage, and a kept
connection the server closed while idle."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import orjson
import pytest

from services.gateway.upstream_http import DirectHttp, HttpStatusError, NotJsonRpcError

Answer = Callable[[dict[str, object]], bytes]


def _json(message: dict[str, object]) -> bytes:
    body = orjson.dumps({"jsonrpc": "2.0", "id": message["id"], "result": {"echo": message["params"]}})
    return b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(body) + body


def _sse(message: dict[str, object]) -> bytes:
    events = (b"id: 1\ndata: \n\n"
              + b'data: {"jsonrpc":"2.0","method":"notifications/message","params":{}}\n\n'
              + b"data: " + orjson.dumps({"jsonrpc": "2.0", "id": message["id"], "result": {"ok": True}}) + b"\n\n")
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (events[:10], events[10:]))
    return b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n" + chunks + \
        b"0\r\n\r\n"


def _not_found(_: dict[str, object]) -> bytes:
    return b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"


def _garbage(_: dict[str, object]) -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 5\r\n\r\nhello"


class _Server:
    def __init__(self) -> None:
        self.answer: Answer = _json
        self.close_after = False
        self.connections = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        while True:
            head = await reader.readuntil(b"\r\n\r\n") if not reader.at_eof() else b""
            if not head:
                break
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length")))
            message = orjson.loads(await reader.readexactly(length))
            writer.write(self.answer(message))
            await writer.drain()
            if self.close_after:
                break
        writer.close()


@pytest.fixture
async def server() -> AsyncIterator[tuple[_Server, str]]:
    s = _Server()

    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            await s.handle(r, w)
        except (asyncio.IncompleteReadError, ConnectionError):
            w.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    async with srv:
        yield s, f"http://127.0.0.1:{port}/mcp"


def _call(i: int) -> dict[str, object]:
    return {"jsonrpc": "2.0", "id": f"sg-{i}", "method": "tools/call", "params": {"name": "t", "x": i}}


async def test_json_answers_reuse_one_connection(server: tuple[_Server, str]) -> None:
    """Three calls: each answer is the JSON-RPC message with the request's id, on one kept connection."""
    s, url = server
    direct = DirectHttp(url, {"Mcp-Session-Id": "abc"})
    for i in range(3):
        assert (await direct.post(_call(i)))["result"] == {"echo": {"name": "t", "x": i}}
    assert s.connections == 1
    direct.close()


async def test_an_sse_answer_in_chunks(server: tuple[_Server, str]) -> None:
    """A chunked event stream with a priming event and a notification before the answer."""
    s, url = server
    s.answer = _sse
    assert (await DirectHttp(url, {}).post(_call(1))) == {"jsonrpc": "2.0", "id": "sg-1", "result": {"ok": True}}


async def test_status_and_garbage(server: tuple[_Server, str]) -> None:
    """A 404 is HttpStatusError(404); a body that is not the JSON-RPC answer is NotJsonRpcError."""
    s, url = server
    direct = DirectHttp(url, {})
    s.answer = _not_found
    with pytest.raises(HttpStatusError) as e:
        await direct.post(_call(1))
    assert e.value.status == 404
    s.answer = _garbage
    with pytest.raises(NotJsonRpcError):
        await direct.post(_call(2))


async def test_a_connection_the_server_closed_is_replaced(server: tuple[_Server, str]) -> None:
    """The server closes each connection after one answer: the next call retries on a new one."""
    s, url = server
    s.close_after = True
    direct = DirectHttp(url, {})
    for i in range(3):
        assert (await direct.post(_call(i)))["id"] == f"sg-{i}"
        await asyncio.sleep(0.05)
    assert s.connections == 3
