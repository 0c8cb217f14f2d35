"""An HTTP/1.1 proxy on 127.0.0.1 that loses answers: the network fault behind every client retry.

Each request is read whole (headers and a ``Content-Length`` body), sent to the upstream on a new
connection, and the upstream's whole answer read; then, for the requests :attr:`DropProxy.drop`
selects, the client's connection is closed without a byte of it. The upstream did the work; the
client only sees a broken connection and, if it retries, sends the same request again. Runs its
own event loop in a thread, so that synchronous clients (the OpenTelemetry exporter) can use it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass, field


async def _read_message(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    return head + (await reader.readexactly(length) if length else b"")


@dataclass
class DropProxy:
    """Forwards to ``upstream_port``; ``drop(n)`` says whether to lose the answer to request n (from 0)."""

    upstream_port: int
    drop: Callable[[int], bool]
    port: int = 0
    requests: int = 0
    dropped: list[bytes] = field(default_factory=list)
    """The status lines of the answers lost."""
    _loop: asyncio.AbstractEventLoop | None = None
    _stop: asyncio.Event | None = None
    _thread: threading.Thread | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def __enter__(self) -> DropProxy:
        ready = threading.Event()

        async def serve() -> None:
            self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
            server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
            self.port = server.sockets[0].getsockname()[1]
            ready.set()
            await self._stop.wait()
            server.close()
            for task in self._tasks:  # connections the client keeps alive
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await server.wait_closed()

        self._thread = threading.Thread(target=asyncio.run, args=(serve(),), name="drop-proxy", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the proxy did not start")
        return self

    def __exit__(self, *_: object) -> None:
        assert self._loop is not None and self._stop is not None and self._thread is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            while True:
                request = await _read_message(reader)
                n, self.requests = self.requests, self.requests + 1
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
                up_writer.write(request)
                await up_writer.drain()
                answer = await _read_message(up_reader)
                up_writer.close()
                if self.drop(n):
                    self.dropped.append(answer.split(b"\r\n", 1)[0])
                    break
                writer.write(answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            self._tasks.discard(task)
