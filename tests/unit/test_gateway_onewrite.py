"""The gateway's HTTP protocol writes an answer's head and body in one write, and otherwise sends
what uvicorn sends: HEAD answers, 100-continue, chunked streams and failures after the head."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import uvicorn
from starlette.types import Receive, Scope, Send

from services.gateway.onewrite import OneWriteHttp, _HeldHead


class _Recording(asyncio.Transport):
    """A transport that keeps each write (what reaches the socket, one ``send`` each)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True


HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n"


def test_a_head_with_a_body_goes_out_with_the_body() -> None:
    t = _Recording()
    held = _HeldHead(t, hold=True)
    held.write(HEAD)
    assert t.writes == []
    held.write(b"{}")
    held.write(b"more")
    assert t.writes == [HEAD + b"{}", b"more"]


def test_heads_without_a_body_informational_ones_and_head_requests_pass_at_once() -> None:
    empty = b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n"
    chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
    for head in (empty, chunked):
        t = _Recording()
        _HeldHead(t, hold=True).write(head)
        assert t.writes == [head]
    t = _Recording()
    held = _HeldHead(t, hold=True)
    held.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    held.write(HEAD)
    assert t.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]
    held.write(b"{}")
    assert t.writes[1:] == [HEAD + b"{}"]
    t = _Recording()
    _HeldHead(t, hold=False).write(HEAD)  # a HEAD request: no body follows
    assert t.writes == [HEAD]


def test_a_held_head_is_sent_before_the_connection_closes() -> None:
    t = _Recording()
    held = _HeldHead(t, hold=True)
    held.write(HEAD)
    held.close()
    assert t.writes == [HEAD] and t.closed


async def _app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["path"] == "/fail":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"10")]})
        raise RuntimeError("failed after the head")
    if scope["path"] == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"part", "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    answer = b'{"echo":"' + body + b'"}'
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(answer)).encode())]})
    await send({"type": "http.response.body", "body": answer})


@contextlib.asynccontextmanager
async def _serving() -> AsyncIterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(_app, http=OneWriteHttp, log_level="critical", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    for _ in range(1000):
        if server.started:
            break
        await asyncio.sleep(0.01)
    else:
        raise RuntimeError("uvicorn did not start in 10 s")
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        await task


async def _exchange(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    data = await asyncio.wait_for(reader.read(), 10)  # the server closes (Connection: close or failure)
    writer.close()
    return data


async def test_answers_through_uvicorn_are_complete() -> None:
    """Keep-alive requests on one connection, HEAD, 100-continue, a chunked stream and a failure
    after the head all get uvicorn's answers, none held back."""
    async with _serving() as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for text in (b"ab", b"cd"):
            writer.write(b"POST /x HTTP/1.1\r\nhost: t\r\ncontent-length: 2\r\n\r\n" + text)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"content-length: 13\r\n" in head
            assert await asyncio.wait_for(reader.readexactly(13), 10) == b'{"echo":"' + text + b'"}'
        writer.write(b"HEAD /x HTTP/1.1\r\nhost: t\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"content-length: 11\r\n" in head
        writer.close()
        continued = await _exchange(port, b"POST /x HTTP/1.1\r\nhost: t\r\nexpect: 100-continue\r\n"
                                          b"content-length: 2\r\nconnection: close\r\n\r\nef")
        assert continued.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n")
        assert continued.endswith(b'{"echo":"ef"}')
        streamed = await _exchange(port, b"GET /stream HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n")
        assert b"transfer-encoding: chunked\r\n" in streamed and streamed.endswith(b"4\r\npart\r\n0\r\n\r\n")
        failed = await _exchange(port, b"GET /fail HTTP/1.1\r\nhost: t\r\n\r\n")
        assert failed.startswith(b"HTTP/1.1 200 OK\r\n") and failed.endswith(b"content-length: 10\r\n\r\n")
