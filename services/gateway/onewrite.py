"""uvicorn's HTTP protocol with each answer's head and body written together.

uvicorn writes a response's status line and headers as soon as the application starts the response,
then its body on the next message: two ``send`` system calls and, with Nagle's algorithm off, two TCP
segments, which the agent's HTTP client may read in two wake-ups. Here a head that announces a
``content-length`` above zero is held until the body's first write (or the connection's close) and
goes out in the same write, so a JSON answer crosses the socket in one piece. The bytes sent, their
order and when the connection closes are unchanged.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_LENGTH = re.compile(rb"\r\ncontent-length: *([0-9]+)\r\n", re.IGNORECASE)


class _HeldHead:
    """One request's transport: its response head, when a body follows, waits for the next write."""

    def __init__(self, transport: asyncio.Transport, *, hold: bool) -> None:
        self._transport = transport
        self._hold = hold
        """Until the final (non-1xx) head has gone by; never for HEAD requests, which get no body."""
        self._head: bytes | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._head is not None:
            data, self._head = self._head + bytes(data), None
        elif self._hold and data[:5] == b"HTTP/" and bytes(data[-4:]) == b"\r\n\r\n" and data[9:10] != b"1":
            self._hold = False
            length = _LENGTH.search(data)
            if length is not None and int(length.group(1)) > 0:
                self._head = bytes(data)
                return
        self._transport.write(data)

    def close(self) -> None:
        if self._head is not None and not self._transport.is_closing():
            self._transport.write(self._head)
        self._head = None
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class OneWriteHttp(HttpToolsProtocol):
    """:class:`HttpToolsProtocol` whose request cycles write through :class:`_HeldHead`."""

    def on_headers_complete(self) -> None:
        cycle = self.cycle
        super().on_headers_complete()
        if self.cycle is not None and self.cycle is not cycle:  # a new request (not an upgrade)
            self.cycle.transport = _HeldHead(self.transport, hold=self.scope["method"] != "HEAD")  # type: ignore[assignment]
