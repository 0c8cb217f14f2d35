"""The query API app factory: investigations, analytics, proofs, subjects, and the shredder.

Components can be passed in (tests, the embedded mode: storage as
:class:`~services.query.stores.QueryStores`); the others are built from :class:`Settings` (see
:mod:`services.query.service`). The lifespan starts them, runs the
retention shredder every ``shred_interval_s`` seconds, and stops everything on shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.routing import RouteContext
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sealtrail.core.quorum import WitnessPolicy
from sealtrail.infra.logs import configure_logging
from sealtrail.infra.problems import install_problem_handlers
from sealtrail.infra.settings import Settings
from sealtrail.infra.witnessconfig import WITNESS_CONFIG_ENV, load_witness_config
from services.query import analytics, calls, health, proofs, subjects
from services.query.config import QueryOptions
from services.query.console.router import ConsoleHeaders
from services.query.console.router import router as console_router
from services.query.console.sessions import ConsoleSettings, SessionStore
from services.query.console.signin import SignInLimiter
from services.query.deps import ServiceDep, current_principal
from services.query.inputs import refuse_unexpected_input
from services.query.models import Problem
from services.query.ports import AnalyticsReader
from services.query.responses import body_problem, problems, validation_problem
from services.query.routing import api_routes
from services.query.service import QueryParts, QueryService, build_service
from services.query.stores import QueryStores

DESCRIPTION = (
    "Investigations, analytics, proofs and data-subject requests over Sealtrail's tenant logs. "
    "Authenticate with `Authorization: Bearer <API key>`; errors are RFC 9457 problem details. "
    "Revealing or exporting a payload writes an `access` event into the log first. See docs/query.md."
)


class RequestMetrics:
    """Counts requests and their latency by route template (never by concrete path)."""

    def __init__(self, app: ASGIApp, *, owner: FastAPI) -> None:
        self._app = app
        self._owner = owner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started, status = time.perf_counter(), 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self._app(scope, receive, sending)
        finally:
            service: QueryService | None = getattr(self._owner.state, "query", None)
            if service is not None:
                route = getattr(scope.get("route"), "path", "unmatched")
                service.metrics.requests.labels(route=route, status=str(status)).inc()
                service.metrics.request_seconds.labels(route=route).observe(time.perf_counter() - started)


def _errors(app: FastAPI) -> None:
    install_problem_handlers(app)
    app.add_exception_handler(RequestValidationError, validation_problem)
    app.add_exception_handler(StarletteHTTPException, body_problem)


async def _analytics_reader(service: ServiceDep) -> AnalyticsReader:
    return service.stores.analytics


def _analytics_app() -> FastAPI:
    """``/v1/analytics/*`` (services/query/analytics.py), wired as that module's docstring asks:
    its placeholders are overridden with this app's authentication and an analytics reader over
    the service's stores. It is a sub-application because FastAPI re-derives every dependency of
    every route, on every request, while an app has any override; this keeps that cost here."""
    sub = FastAPI(openapi_url=None, docs_url=None, redoc_url=None,
                  dependencies=[Depends(refuse_unexpected_input)])
    _errors(sub)
    sub.include_router(analytics.router)
    sub.dependency_overrides[analytics.get_principal] = current_principal
    sub.dependency_overrides[analytics.get_analytics_reader] = _analytics_reader
    return sub


class _PrefixMount(Mount):
    """A mount at ``""`` (its app sees the whole path) that matches only paths under ``prefix``, so
    every other path, and a known path asked with the wrong method (405), stays the parent's."""

    def __init__(self, prefix: str, app: ASGIApp) -> None:
        super().__init__("", app=app)
        self._prefix = prefix.rstrip("/") + "/"

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        path, root = scope.get("path", ""), scope.get("root_path", "")
        if scope["type"] == "http" and not path.removeprefix(root).startswith(self._prefix):
            return Match.NONE, {}
        return super().matches(scope)


def openapi_document(*, title: str, description: str, routes: Iterable[BaseRoute | RouteContext]
                     ) -> dict[str, Any]:
    """The OpenAPI document of ``routes``. Every operation may answer 400 (an unknown or repeated
    query parameter, :mod:`services.query.inputs`), so each one documents it."""
    doc = get_openapi(title=title, version="1", description=description, routes=list(api_routes(routes)))
    bad_input = problems(400)[400]
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault("Problem", Problem.model_json_schema())
    for operations in doc.get("paths", {}).values():
        for operation in operations.values():
            if "400" not in operation.get("responses", {}):
                operation["responses"]["400"] = {
                    "description": bad_input["description"],
                    "content": {k: {"schema": {"$ref": "#/components/schemas/Problem"}}
                                for k in bad_input["content"]}}
    return doc


def _openapi(app: FastAPI) -> Callable[[], dict[str, Any]]:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = openapi_document(title=app.title, description=app.description,
                                                  routes=app.routes)
        return app.openapi_schema
    return openapi


def create_app(settings: Settings, *, options: QueryOptions | None = None,
               parts: QueryParts | None = None, stores: QueryStores | None = None) -> FastAPI:
    """The query ASGI app; its lifespan starts and stops the service's dependencies.

    Without ``stores`` it connects to PostgreSQL (``settings.database_url``); the embedded default
    passes :func:`services.query.stores.sqlite_stores` (see that module for the whole recipe).
    """
    opts = options or QueryOptions()
    given = parts or QueryParts()
    if stores is not None:
        given = replace(given, stores=stores)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            service = await build_service(settings, opts, given, stack)
            app.state.query = analytics_app.state.query = service
            app.state.console_sessions = analytics_app.state.console_sessions = SessionStore(
                store=service.stores.console_sessions, settings=console)
            stop = asyncio.Event()
            shredder = None
            if opts.shred_interval_s > 0:
                shredder = asyncio.create_task(service.shredder.run_forever(opts.shred_interval_s, stop),
                                               name="query-shredder")
            try:
                yield
            finally:
                stop.set()
                service.publisher_started = False
                if shredder is not None:
                    with contextlib.suppress(asyncio.CancelledError):
                        await shredder

    app = FastAPI(title="Sealtrail query", version="1", lifespan=lifespan, description=DESCRIPTION,
                  dependencies=[Depends(refuse_unexpected_input)])
    _errors(app)
    for router in (health.router, calls.router, proofs.router, subjects.router):
        app.include_router(router)
    app.include_router(console_router)
    analytics_app = _analytics_app()
    console = ConsoleSettings()
    app.state.console_signin = SignInLimiter(burst=console.signin_burst, per_minute=console.signin_per_minute)
    app.router.routes.append(_PrefixMount(analytics.router.prefix, analytics_app))
    app.openapi = _openapi(app)  # type: ignore[method-assign]
    app.add_middleware(ConsoleHeaders)
    app.add_middleware(RequestMetrics, owner=app)
    return app


def create_app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory`` and worker processes: settings from ``SEALTRAIL_*``."""
    settings = Settings()
    configure_logging(settings.log_level)
    config = os.environ.get(WITNESS_CONFIG_ENV)
    witnesses = None if not config else load_witness_config(Path(config))
    policy = None if witnesses is None else WitnessPolicy(tuple(w.verifier for w in witnesses.witnesses),
                                                          witnesses.quorum)
    return create_app(settings, options=QueryOptions(witnesses=policy))
