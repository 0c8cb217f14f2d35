"""Running an ASGI app under uvicorn from the command line, with one-line errors.

- :func:`listen` binds the address before anything is printed: a port in use, or an address
  this machine does not have, is one line on stderr and exit 1.
- :class:`AppRunner` serves an app on that socket. A :class:`~sealtrail.errors.SealtrailError`
  raised while the app's lifespan starts (missing settings, unreadable keys) is printed as one
  ``error: <reason>`` line and exits 1, instead of a traceback inside a JSON log line and exit 3.
  :meth:`AppRunner.stop` asks the server to shut down gracefully (a worker that failed uses it, so
  the process exits with the worker's status rather than by a re-raised SIGTERM).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import typer

from sealtrail.errors import SealtrailError

if TYPE_CHECKING:  # the light install has no starlette; only the commands that serve need it
    from starlette.applications import Starlette

PORT_MIN, PORT_MAX = 1, 65535
"""Bounds of every ``--port`` option (typer refuses a value outside them)."""
_STARTUP_FAILED = "Application startup failed. Exiting."

Message = MutableMapping[str, Any]
Receive = Callable[[], Any]
Send = Callable[[Message], Any]


def error_exit(reason: str) -> typer.Exit:
    """Print ``error: <reason>`` as one line on stderr and return the exit-1 signal to raise."""
    typer.echo("error: " + " ".join(reason.split()), err=True)
    return typer.Exit(1)


def listen(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (not yet listening); one line and exit 1 if it cannot be."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        reason = e.strerror or type(e).__name__
        raise error_exit(f"cannot listen on {host}:{port}: {reason[:1].lower()}{reason[1:]}") from None
    sock.set_inheritable(True)
    return sock


class _DropStartupFailed(logging.Filter):
    """Drops uvicorn's "startup failed" line when the reason is printed as one line instead."""

    def __init__(self, runner: AppRunner) -> None:
        super().__init__()
        self._runner = runner

    def filter(self, record: logging.LogRecord) -> bool:
        return not (self._runner.startup_error is not None and record.getMessage() == _STARTUP_FAILED)


class AppRunner:
    """Serves one Starlette/FastAPI app on a bound socket (see the module docstring)."""

    def __init__(self, app: Starlette, sock: socket.socket) -> None:
        import uvicorn

        self.startup_error: SealtrailError | None = None
        self._sock = sock
        self._app = app
        inner = app.router.lifespan_context
        runner = self

        @asynccontextmanager
        async def lifespan(target: Any) -> AsyncIterator[Any]:
            started = False
            try:
                async with inner(target) as state:
                    started = True
                    yield state
            except SealtrailError as e:
                if started:
                    raise
                runner.startup_error = e
                raise

        app.router.lifespan_context = lifespan
        config = uvicorn.Config(self._quiet_startup_failure, interface="asgi3", lifespan="on", log_config=None,
                                access_log=False, server_header=False)
        self.server = uvicorn.Server(config)

    async def _quiet_startup_failure(self, scope: Message, receive: Receive, send: Send) -> None:
        """The app, except that a startup failure we report ourselves carries no traceback text."""
        async def guarded(message: Message) -> None:
            if message["type"] == "lifespan.startup.failed" and self.startup_error is not None:
                message = {"type": "lifespan.startup.failed", "message": ""}
            await send(message)

        await self._app(scope, receive, guarded if scope["type"] == "lifespan" else send)

    def stop(self) -> None:
        """Ask the server to shut down gracefully (safe to call from the event loop's thread)."""
        self.server.should_exit = True

    def run(self) -> None:
        """Serve until stopped; exit 1 with one line if the app's lifespan fails with a Sealtrail error."""
        quiet = _DropStartupFailed(self)
        uvicorn_log = logging.getLogger("uvicorn.error")
        uvicorn_log.addFilter(quiet)
        try:
            self.server.run(sockets=[self._sock])
        except SystemExit as e:
            if self.startup_error is not None:
                raise error_exit(str(self.startup_error)) from None
            raise typer.Exit(e.code if isinstance(e.code, int) else 1) from None
        finally:
            uvicorn_log.removeFilter(quiet)
            self._sock.close()
