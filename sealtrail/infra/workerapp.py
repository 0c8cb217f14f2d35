"""The HTTP face of a background worker (ledger, projector): health, readiness and metrics.

The worker runs inside the app's lifespan, so the HTTP server's own signal handling stops both.
If the worker fails on its own, :attr:`WorkerExit.code` becomes 1 and :attr:`WorkerExit.terminate`
is called to end the process; the command line sets it to stop its HTTP server gracefully and
then returns the code as its exit status (the default, SIGTERM to this process, ends it with 143).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

log = logging.getLogger("sealtrail.worker")


class WorkerExit:
    """The exit status a worker process should end with, and how to end the process on a failure."""

    def __init__(self, terminate: Callable[[], None]) -> None:
        self.code = 0
        self.terminate = terminate


def worker_app(
    *,
    name: str,
    run: Callable[[], Coroutine[Any, Any, None]],
    stop: Callable[[], None],
    readiness: Callable[[], tuple[bool, dict[str, object]]],
    terminate: Callable[[], None] | None = None,
) -> tuple[FastAPI, WorkerExit]:
    """An app serving /healthz, /readyz and /metrics that runs ``run()`` for as long as it serves.

    ``readiness()`` returns whether the worker is ready and extra fields for the /readyz body.
    ``terminate`` ends the process when the worker fails (default: SIGTERM to this process); the
    caller may replace it later through the returned :attr:`WorkerExit.terminate`.
    """
    status = WorkerExit(terminate or _sigterm_self)

    def exit_on_failure(task: asyncio.Task[None]) -> None:
        if task.cancelled() or task.exception() is None:
            return
        exc = task.exception()
        log.critical("%s stopped: %s: %s", name, type(exc).__name__, exc)
        status.code = 1
        status.terminate()

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(run(), name=name)
        task.add_done_callback(exit_on_failure)
        yield
        stop()
        await asyncio.wait({task})  # a failure was logged when it happened; do not raise it again

    app = FastAPI(title=f"Sealtrail {name}", docs_url=None, redoc_url=None, lifespan=lifespan)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz(response: Response) -> dict[str, object]:
        ready, extra = readiness()
        if not ready:
            response.status_code = 503
        return {"ready": ready, **extra}

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app, status


def _sigterm_self() -> None:
    os.kill(os.getpid(), signal.SIGTERM)
