"""One ASGI app for the embedded default: ingest, ledger, projector and query in this process.

Routes: ``POST /v1/events`` and ``POST /v1/traces`` (OTLP, docs/otlp.md) go to ingest;
``GET /v1/keys`` is answered here (public, every verifier key: receipt, checkpoint, cosign and
erasure-receipt, in the query API's ``keys`` list and ingest's ``receipt`` list); every other
path goes to the query API. The lifespan opens the SQLite database and the local log, starts the
ledger, then ingest, the query API and the projector, and stops them in the reverse order.
``GET /metrics`` renders the query API's, ingest's and the ledger's metrics together.
``/openapi.json`` (and ``/docs``) describe every route of the port: the query API's,
``POST /v1/events`` and ``POST /v1/traces``. A known path asked with another method is a 405
problem with ``Allow``, wherever the path is routed.

Ingest answers 202 only after the local log fsync'd the batch, so a crash loses nothing
acknowledged; the ledger resumes from the offsets stored with the entries. While the ledger is
more than ``max_backlog`` records behind, a new batch waits briefly for room and is then
answered 429 with Retry-After instead (:mod:`sealtrail.cli.embedded.backpressure`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import FastAPI
from prometheus_client import REGISTRY, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from sealtrail.cli.embedded import query as embedded_query
from sealtrail.cli.embedded.backpressure import (
    DEFAULT_MAX_WAIT_S,
    DEFAULT_RETRY_AFTER_S,
    LedgerBacklog,
)
from sealtrail.cli.embedded.datadir import DEFAULT_MAX_BACKLOG, SEALED_TOPIC, DataDir
from sealtrail.cli.embedded.ledger import DEFAULT_CHECKPOINT_INTERVAL_S, LEDGER_GROUP, SharedLog, running_ledger
from sealtrail.cli.embedded.logretention import (
    DEFAULT_LOG_RETENTION_INTERVAL_S,
    DEFAULT_LOG_RETENTION_S,
    keep_trimmed,
)
from sealtrail.core.note import Ed25519Signer
from sealtrail.core.quorum import WitnessPolicy
from sealtrail.core.receipt import CachedEd25519Signer
from sealtrail.core.witnessing import WitnessingConfig
from sealtrail.infra.auth_sqlite import SqliteAuthStore
from sealtrail.infra.gctune import tune_gc
from sealtrail.infra.keycache import CachingKeyStore
from sealtrail.infra.keystore_sqlite import SqliteKeyStore
from sealtrail.infra.locallog import DEFAULT_SEGMENT_BYTES, LocalLog
from sealtrail.infra.problems import http_problem
from sealtrail.infra.servicekey import load_service_signer
from sealtrail.infra.sqlite import SqliteDatabase, translated
from services.ingest.app import IngestParts, IngestStores
from services.ingest.app import create_app as create_ingest_app
from services.ingest.config import IngestOptions
from services.ingest.routes import events_asgi, events_endpoint
from services.ledger.sqlite.reader import SqliteLedgerReader
from services.ledger.sqlite.store import SqliteLedgerStore
from services.query.app import DESCRIPTION as QUERY_DESCRIPTION
from services.query.app import openapi_document
from services.query.routing import api_routes

RECEIPT_FORMAT = "sealtrail.dev/receipt-proof/v2"
TITLE = "Sealtrail (embedded: ingest and query)"


@dataclass(frozen=True)
class EmbeddedOptions:
    """Tunables of the embedded process."""

    checkpoint_interval_s: float = DEFAULT_CHECKPOINT_INTERVAL_S
    projector_poll_s: float = 0.2
    max_backlog: int = DEFAULT_MAX_BACKLOG
    """Records the ledger may be behind before new event batches wait, then are answered 429."""
    backpressure_max_wait_s: float = DEFAULT_MAX_WAIT_S
    backpressure_retry_after_s: float = DEFAULT_RETRY_AFTER_S
    tune_gc: bool = False
    """Set the server process's cycle collector (:mod:`sealtrail.infra.gctune`) once started."""
    log_retention_s: float = DEFAULT_LOG_RETENTION_S
    """Local-log segments already logged are deleted once older than this; 0: at the next pass
    (:mod:`.logretention`)."""
    log_retention_interval_s: float = DEFAULT_LOG_RETENTION_INTERVAL_S
    log_segment_bytes: int = DEFAULT_SEGMENT_BYTES
    witnesses: WitnessingConfig | None = None
    """Witnesses every checkpoint is submitted to (c2sp.org/tlog-witness); none by default."""


async def record_receipt_key(db: SqliteDatabase, signer: Ed25519Signer) -> None:
    """Publish the receipt vkey in ``signing_keys`` (purpose ``receipt``); kept if already there."""
    cached = CachedEd25519Signer(signer)
    with translated("publish receipt key"):
        await db.write(lambda c: c.execute(
            "INSERT INTO signing_keys (key_name, key_id, purpose, vkey) VALUES (?, ?, 'receipt', ?)"
            " ON CONFLICT DO NOTHING", (cached.name, f"{cached.key_id:08x}", cached.vkey())))


def _keys_endpoint(db: SqliteDatabase, erasure_vkey: str) -> Route:
    reader = SqliteLedgerReader(db=db)

    async def keys(_: Request) -> Response:
        published = [{"purpose": k.purpose, "vkey": k.vkey, "not_before": k.not_before,
                      "not_after": k.not_after} for k in await reader.published_keys()]
        published.append({"purpose": "erasure-receipt", "vkey": erasure_vkey, "not_before": None,
                          "not_after": None})
        receipts = [{"vkey": k["vkey"], "purpose": "receipt"} for k in published if k["purpose"] == "receipt"]
        body = {"keys": published, "receipt": receipts, "receipt_format": RECEIPT_FORMAT}
        return Response(orjson.dumps(body), media_type="application/json")

    return Route("/v1/keys", keys, methods=["GET"])


def _metrics_endpoint(ingest: FastAPI, query: FastAPI, backlog: LedgerBacklog) -> Route:
    """One page for the process: the query API's and ingest's registries and the global one
    (ledger, backpressure, process)."""

    async def metrics(_: Request) -> Response:
        backlog.records()  # refreshes the gauge
        body = b"".join([query.state.query.metrics.render(), ingest.state.ingest.metrics.render(),
                         generate_latest(REGISTRY)])
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    return Route("/metrics", metrics, methods=["GET"])


class _Rest(Mount):
    """The query API at ``""`` for every path but those the routes before it own: on those, a wrong
    method falls to the owning route (405 with ``Allow``) instead of the query API's 404."""

    def __init__(self, app: ASGIApp, *, owned: Sequence[str]) -> None:
        super().__init__("", app=app)
        self._owned = frozenset(owned)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] == "http" and scope.get("path") in self._owned:
            return Match.NONE, {}
        return super().matches(scope)


class _EmbeddedApp(Starlette):
    """The port's app: ``POST /v1/events`` goes straight to ``events`` (a bare ASGI handler that
    answers every error itself), everything else through the middleware and the routes. A
    one-event request then costs no middleware layers, route matching or ``Request``."""

    def __init__(self, *, events: ASGIApp, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._events = events

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/v1/events" and scope["method"] == "POST" \
                and not scope.get("root_path"):
            await self._events(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def _openapi(query: FastAPI, ingest: FastAPI, ingest_paths: Sequence[str]) -> Callable[[], dict[str, Any]]:
    """The document of the whole port, served at the query API's ``/openapi.json``."""
    served = [r for r in api_routes(ingest.routes) if r.path in ingest_paths]

    def openapi() -> dict[str, Any]:
        if query.openapi_schema is None:
            query.openapi_schema = openapi_document(
                title=TITLE, routes=[*served, *query.routes],
                description=f"{QUERY_DESCRIPTION} `POST /v1/events` and `POST /v1/traces` are ingest's "
                            "(docs/ingest.md, docs/otlp.md).")
        return query.openapi_schema
    return openapi


@contextlib.asynccontextmanager
async def _trimming(log: LocalLog, db: SqliteDatabase, opts: EmbeddedOptions) -> AsyncIterator[None]:
    store = SqliteLedgerStore(db=db)

    async def committed(partitions: list[int]) -> dict[int, int]:
        return await store.durable_offsets(group=LEDGER_GROUP, topic=SEALED_TOPIC, partitions=partitions)

    stop = asyncio.Event()
    task = asyncio.create_task(keep_trimmed(log, committed, stop, max_age_s=opts.log_retention_s,
                                            interval_s=opts.log_retention_interval_s,
                                            compact=db.checkpoint_wal), name="log-retention")
    try:
        yield
    finally:
        stop.set()
        await task


def create_app(data: DataDir, *, options: EmbeddedOptions | None = None) -> Starlette:
    """The embedded app over ``data`` (prepared by :func:`~sealtrail.cli.embedded.datadir.initialise`)."""
    opts = options or EmbeddedOptions()
    settings = data.settings()
    kek = data.load_kek()
    receipt_signer = load_service_signer(data.receipt_key, what="receipt key")
    query_signer = load_service_signer(data.query_key, what="query service key")
    db = SqliteDatabase(path=data.db)
    log = LocalLog(root=data.log, segment_bytes=opts.log_segment_bytes)
    publisher = SharedLog(log)
    backlog = LedgerBacklog(bound=opts.max_backlog, retry_after_s=opts.backpressure_retry_after_s,
                            max_wait_s=opts.backpressure_max_wait_s)
    # One key cache for ingest and the query API: an erasure through the API reaches sealing at once.
    keys = CachingKeyStore(inner=SqliteKeyStore(db=db, kek=kek))
    ingest: FastAPI = create_ingest_app(settings, options=IngestOptions(migrate=False), parts=IngestParts(
        publisher=publisher, signer=receipt_signer, admission=backlog.admit,
        stores=IngestStores(auth=SqliteAuthStore(db=db), keys=keys)))
    witnesses = None if opts.witnesses is None else WitnessPolicy(
        tuple(w.verifier for w in opts.witnesses.witnesses), opts.witnesses.quorum)
    query = embedded_query.build(settings, db=db, kek=kek, publisher=publisher, signer=query_signer, keys=keys,
                                 projector_poll_s=opts.projector_poll_s, witnesses=witnesses)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            stack.push_async_callback(db.close)
            await db.migrate()
            await log.start()
            stack.push_async_callback(log.stop)
            await record_receipt_key(db, receipt_signer)
            ledger = await stack.enter_async_context(running_ledger(
                data, db, log, checkpoint_interval_s=opts.checkpoint_interval_s, witnesses=opts.witnesses))
            backlog.attach(ledger.driver)
            stack.callback(backlog.attach, None)
            await stack.enter_async_context(_trimming(log, db, opts))
            await stack.enter_async_context(ingest.router.lifespan_context(ingest))
            await stack.enter_async_context(query.lifespan())
            if opts.tune_gc:
                tune_gc()
            yield

    # POST /v1/events is served before the router (_EmbeddedApp); the route stays for its 405s and the
    # document. /v1/traces through ingest's app.
    own = [Route("/v1/events", events_endpoint(lambda: ingest.state.ingest), methods=["POST"]),
           Route("/v1/traces", ingest, methods=["POST"]),
           _keys_endpoint(db, CachedEd25519Signer(query_signer).vkey()),
           _metrics_endpoint(ingest, query.app, backlog)]
    query.app.openapi = _openapi(query.app, ingest, ["/v1/events", "/v1/traces"])  # type: ignore[method-assign]
    return _EmbeddedApp(events=events_asgi(lambda: ingest.state.ingest),
                        routes=[*own, _Rest(query.app, owned=[r.path for r in own])], lifespan=lifespan,
                        exception_handlers={StarletteHTTPException: http_problem})
