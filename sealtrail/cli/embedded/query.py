"""The query half of the embedded default: the query API and the projector over SQLite."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.types import ASGIApp

from sealtrail.core.note import Ed25519Signer
from sealtrail.infra.bus import BusPublisher
from sealtrail.infra.settings import Settings
from sealtrail.infra.sqlite import SqliteDatabase


@dataclass(frozen=True)
class EmbeddedQuery:
    """The query API's ASGI app and a context that runs its lifespan and the projector."""

    app: ASGIApp
    lifespan: Callable[[], AbstractAsyncContextManager[None]]


def build(settings: Settings, *, db: SqliteDatabase, publisher: BusPublisher, signer: Ed25519Signer
          ) -> EmbeddedQuery:
    """The query API and projector over ``db``, publishing access and erasure events to ``publisher``."""
    app = Starlette()

    @contextlib.asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        yield

    return EmbeddedQuery(app=app, lifespan=lifespan)
