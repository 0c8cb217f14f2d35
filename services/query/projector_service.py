"""``sealtrail projector``: one projector process with its health and metrics endpoint."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import AsyncIterator

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from sealtrail.infra.postgres import create_pool, migrate_url
from sealtrail.infra.settings import Settings
from services.query.projector import DEFAULT_POLL_INTERVAL_S, Projector
from services.query.projector_store import DEFAULT_BATCH_ENTRIES, PostgresProjectorStore

log = logging.getLogger("sealtrail.projector")
EXIT_CODE = 0


class ProjectorService:
    """Migrates, optionally rebuilds, then projects until stopped (or once caught up, with ``once``)."""

    def __init__(self, settings: Settings, *, batch_entries: int = DEFAULT_BATCH_ENTRIES,
                 poll_interval_s: float = DEFAULT_POLL_INTERVAL_S, rebuild: bool = False,
                 once: bool = False) -> None:
        self.settings = settings
        self._batch = batch_entries
        self._poll = poll_interval_s
        self._rebuild = rebuild
        self._once = once
        self._stop = asyncio.Event()
        self.ready = False
        self.projected = 0

    async def run(self) -> None:
        url = self.settings.require_database()
        await migrate_url(url)
        pool = await create_pool(url, min_size=1, max_size=2)
        try:
            projector = Projector(store=PostgresProjectorStore(pool=pool), batch_entries=self._batch,
                                  poll_interval_s=self._poll)
            self.ready = True
            if self._rebuild:
                self.projected += await projector.rebuild()
                log.info("rebuild done", extra={"entries": self.projected})
            if self._once:
                self.projected += await projector.catch_up()
                return
            await projector.run(self._stop)
        finally:
            self.ready = False
            await pool.close()

    def stop(self) -> None:
        self._stop.set()


def _exit_on_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        exc = task.exception()
        log.critical("projector stopped: %s: %s", type(exc).__name__, exc)
        global EXIT_CODE
        EXIT_CODE = 1
        os.kill(os.getpid(), signal.SIGTERM)


def health_app(service: ProjectorService) -> FastAPI:
    """/healthz, /readyz and /metrics of one projector process, which runs inside the app's lifespan.

    If the projector fails on its own, the process is asked to terminate (and exits non-zero).
    """

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(service.run(), name="projector")
        task.add_done_callback(_exit_on_failure)
        yield
        service.stop()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app = FastAPI(title="Sealtrail projector", docs_url=None, redoc_url=None, lifespan=lifespan)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz(response: Response) -> dict[str, object]:
        if not service.ready:
            response.status_code = 503
        return {"ready": service.ready}

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app
