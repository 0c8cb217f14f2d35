"""``sealtrail projector``: one projector process with its health and metrics endpoint."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg
from fastapi import FastAPI

from sealtrail.errors import UnavailableError
from sealtrail.infra.postgres import create_pool, migrate_url
from sealtrail.infra.settings import Settings
from sealtrail.infra.workerapp import WorkerExit, worker_app
from services.projector.ports import DEFAULT_BATCH_ENTRIES
from services.projector.postgres import PostgresProjectorStore
from services.projector.projector import DEFAULT_POLL_INTERVAL_S, MAX_RETRY_S, Projector

log = logging.getLogger("sealtrail.projector")


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
        self.projector: Projector | None = None

    async def _connect(self, url: str) -> asyncpg.Pool | None:
        """Migrate and open the pool, waiting out an unreachable server with backoff (not ready
        meanwhile); None when stopped first."""
        wait = 0.0
        while not self._stop.is_set():
            try:
                await migrate_url(url)
                return await create_pool(url, min_size=1, max_size=2, application_name="sealtrail-projector")
            except UnavailableError as e:
                wait = min(MAX_RETRY_S, wait * 2 or 1.0)
                if wait == 1.0:
                    log.warning("database unavailable at start: %s; retrying", e)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), timeout=wait)
        return None

    async def run(self) -> None:
        url = self.settings.require_database()
        pool = await self._connect(url)
        if pool is None:
            return
        try:
            projector = self.projector = Projector(store=PostgresProjectorStore(pool=pool),
                                                   batch_entries=self._batch, poll_interval_s=self._poll)
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


def health_app(service: ProjectorService) -> tuple[FastAPI, WorkerExit]:
    """/healthz, /readyz and /metrics of one projector process, which runs inside the app's lifespan."""
    def readiness() -> tuple[bool, dict[str, object]]:
        unavailable = service.projector is not None and service.projector.unavailable
        return service.ready and not unavailable, {"database": not unavailable}

    return worker_app(name="projector", run=service.run, stop=service.stop, readiness=readiness)
