"""The query half of the embedded default: the query API and the projector over SQLite.

Built with :func:`services.query.stores.sqlite_stores` (the query side's one construction point):
the query app publishes access, erasure and retention events to the shared local log, and the
projector follows the SQLite log into the read models in this process.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

from fastapi import FastAPI

from sealtrail.core.note import Ed25519Signer
from sealtrail.core.quorum import WitnessPolicy
from sealtrail.core.sealing import Kek
from sealtrail.errors import SealtrailError
from sealtrail.infra.bus import BusPublisher
from sealtrail.infra.keycache import CachingKeyStore
from sealtrail.infra.settings import Settings
from sealtrail.infra.sqlite import SqliteDatabase
from services.projector.projector import Projector
from services.projector.sqlite import SqliteProjectorStore
from services.query.app import create_app
from services.query.config import QueryOptions
from services.query.service import QueryParts
from services.query.stores import sqlite_stores

log = logging.getLogger("sealtrail.embedded")
_RETRY_S = 1.0


@dataclass(frozen=True)
class EmbeddedQuery:
    """The query API's app and a context that runs its lifespan and the projector."""

    app: FastAPI
    lifespan: Callable[[], AbstractAsyncContextManager[None]]


async def _project(projector: Projector, stop: asyncio.Event) -> None:
    """Run the projector until ``stop``; a failed round is logged and retried, never fatal."""
    while not stop.is_set():
        try:
            await projector.run(stop)
        except SealtrailError as e:
            log.error("projection round failed: %s: %s", type(e).__name__, e)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=_RETRY_S)


def build(settings: Settings, *, db: SqliteDatabase, kek: Kek, publisher: BusPublisher, signer: Ed25519Signer,
          keys: CachingKeyStore, projector_poll_s: float = 0.2,
          witnesses: WitnessPolicy | None = None) -> EmbeddedQuery:
    """The query API and projector over ``db``, publishing access and erasure events to ``publisher``;
    ``keys`` is the key cache shared with ingest."""
    stores = dataclasses.replace(sqlite_stores(db, kek=kek), keys=keys)
    app = create_app(settings, options=QueryOptions(migrate=False, witnesses=witnesses),
                     parts=QueryParts(publisher=publisher, publisher_started=True, signer=signer, kek=kek),
                     stores=stores)
    projector = Projector(store=SqliteProjectorStore(db=db), poll_interval_s=projector_poll_s)

    @contextlib.asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        stop = asyncio.Event()
        async with app.router.lifespan_context(app):
            task = asyncio.create_task(_project(projector, stop), name="projector")
            try:
                yield
            finally:
                stop.set()
                await task

    return EmbeddedQuery(app=app, lifespan=lifespan)
