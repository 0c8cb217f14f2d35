"""Composition root of the gateway: picks the state-store adapter, wires the recorder, upstreams,
gate and MCP server, and serves them over Streamable HTTP with health, readiness, metrics and the
approvals API.

Authentication comes first: a request to ``/mcp`` without a live agent key (or, with ``[oauth]``, a
valid access token) is answered 401 before any byte of its body (any MCP message) is read.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from sealtrail.core.sealing import Kek
from sealtrail.errors import AuthenticationError, PermissionDeniedError, SealtrailError
from sealtrail.infra.problems import problem_for
from services.gateway import admin, approvals, config, credentials, toolreview
from services.gateway.fastpath import FastCalls
from services.gateway.gate import Gateway
from services.gateway.health import HealthMonitor
from services.gateway.keys import KeyVerifier
from services.gateway.metrics import GatewayMetrics
from services.gateway.oauth import TokenRejectedError
from services.gateway.oauth_http import OAuthGuard
from services.gateway.ports import GatewayStore
from services.gateway.proxy import AGENT_SCOPE_KEY, GRANT_SCOPE_KEY, Sessions, build_server, call_from_scope
from services.gateway.recorder import Recorder
from services.gateway.status import ServerGuard
from services.gateway.upstream import Upstream

log = logging.getLogger("sealtrail.gateway")
APPROVER_PREFIX = "@"
"""Keys bound to ``@NAME`` belong to approvers: they may use the approvals API, never ``/mcp``."""
OPERATOR_PREFIX = "#"
"""Keys bound to ``#NAME`` belong to operators: they may use the admin API (``admin.py``), never ``/mcp``."""


async def open_store(database: str) -> GatewayStore:
    """The state store for ``[state] database``: PostgreSQL for a URL, SQLite for a path."""
    if database.startswith(("postgres://", "postgresql://")):
        from services.gateway.postgres import PostgresGatewayStore

        return await PostgresGatewayStore.open(database)
    from services.gateway.sqlite import SqliteGatewayStore

    return SqliteGatewayStore(Path(database))


def read_token(cfg: config.GatewayConfig) -> str:
    try:
        token = cfg.ledger.token_file.read_text().strip()
    except OSError as e:
        raise config.GatewayConfigError(f"ledger.token_file: cannot read {cfg.ledger.token_file}: "
                                        f"{e.strerror}") from e
    if not token:
        raise config.GatewayConfigError(f"ledger.token_file: {cfg.ledger.token_file} is empty")
    return token


@dataclass
class Runtime:
    """Everything one gateway process runs; built by :func:`start`, ended by :meth:`close`."""

    cfg: config.GatewayConfig
    store: GatewayStore
    recorder: Recorder
    metrics: GatewayMetrics
    gateway: Gateway
    sessions: Sessions
    keys: KeyVerifier
    kek: Kek | None = None
    guard: ServerGuard | None = None
    health: HealthMonitor | None = None
    oauth: OAuthGuard | None = None

    def reload(self) -> bool:
        """Re-read the configuration file; a bad file is refused and the running policy kept."""
        try:
            cfg = config.load(self.cfg.path)
        except config.GatewayConfigError as e:
            self.metrics.reloads.labels("refused").inc()
            log.error("configuration reload refused, the running policy stays: %s", e)
            return False
        for name, server in cfg.servers.items():
            if name not in self.gateway.upstreams:
                self.gateway.upstreams[name] = Upstream(server, on_tools_changed=self.gateway.tools_changed,
                                                        credentials=credentials.source(self.store, self.kek))
        self.cfg = cfg
        if self.oauth is not None and cfg.oauth is not None:  # adding or removing [oauth] takes a restart
            self.oauth.cfg = cfg.oauth
        self.gateway.apply(cfg)
        if self.health is not None:
            self.health.apply(cfg)
        self.metrics.reloads.labels("applied").inc()
        log.info("configuration reloaded: policy %s version %s", cfg.policy_id, self.gateway.version)
        return True

    async def close(self) -> None:
        if self.health is not None:
            await self.health.close()
        for upstream in self.gateway.upstreams.values():
            await upstream.close()
        await self.recorder.close()
        await self.store.close()
        if self.oauth is not None:
            await self.oauth.keys.close()


def spool_dir(cfg: config.GatewayConfig, tag: str) -> Path | None:
    """Each process spools into its own subdirectory (a spool has one writer): ``http-PORT`` for a
    gateway (the same after a restart, which then delivers what the last run left), ``stdio-PID``,
    ``cli`` for approval decisions made on the command line."""
    return None if cfg.ledger.spool_dir is None else cfg.ledger.spool_dir / tag


async def start(cfg: config.GatewayConfig, *, spool_tag: str) -> Runtime:
    store = await open_store(cfg.state_database)
    recorder = Recorder(cfg.ledger.url, read_token(cfg), spool_dir=spool_dir(cfg, spool_tag))
    recorder.start()
    metrics, sessions = GatewayMetrics(), Sessions()
    kek = None if cfg.kek_file is None else credentials.load_kek_file(cfg.kek_file)
    source = credentials.source(store, kek)
    upstreams: dict[str, Upstream] = {}
    gateway = Gateway(cfg, store=store, recorder=recorder, metrics=metrics, upstreams=upstreams)
    gateway.announce = sessions.tools_changed  # after the gateway re-pinned the changed list
    upstreams.update({n: Upstream(s, on_tools_changed=gateway.tools_changed,
                              credentials=source) for n, s in cfg.servers.items()})
    rt = Runtime(cfg, store, recorder, metrics, gateway, sessions, KeyVerifier(store, cache_s=cfg.key_cache_s),
                   oauth=_oauth_guard(cfg, gateway))
    rt.kek, rt.guard = kek, ServerGuard(store, store, cache_s=cfg.key_cache_s)
    gateway.guard = rt.guard.refusal
    rt.health = HealthMonitor(cfg, store, recorder.record, kek=kek, guard=rt.guard, upstreams=upstreams)
    rt.health.add_tools_listener(gateway.discovery.on_tools)  # every passing check re-pins the listing
    rt.health.start()
    return rt


def _oauth_guard(cfg: config.GatewayConfig, gateway: Gateway) -> OAuthGuard | None:
    if cfg.oauth is None:
        return None
    from services.gateway.oauth_jwks import JwksCache

    keys = JwksCache(cache_s=cfg.oauth.jwks_cache_s, refetch_s=cfg.oauth.jwks_refetch_s)
    return OAuthGuard(cfg.oauth, keys, name=f"Sealtrail gateway {cfg.gateway_id}", policy=lambda: gateway.cfg,
                      gate=gateway.call_tool, max_body=cfg.max_argument_bytes * 2 + 65536)


class Authenticated:
    """ASGI wrapper: 401 problem details unless the bearer token is a live agent key or (with
    ``[oauth]``) a valid access token, which also sets the tools its scopes allow."""

    def __init__(self, app: Any, keys: KeyVerifier, oauth: OAuthGuard | None = None) -> None:
        self.app, self.keys, self.oauth = app, keys, oauth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        token = _bearer(scope)
        if self.oauth is not None and token and not token.startswith("sgk_"):
            try:
                grant = await self.oauth.admit(token)
            except SealtrailError as e:
                await self.oauth.refusal(e)(scope, receive, send)
                return
            scope[AGENT_SCOPE_KEY], scope[GRANT_SCOPE_KEY] = grant.agent, grant.tools
            refusal, receive = await self.oauth.step_up(scope, receive, grant)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        agent = await self.keys.agent_of(token) if token else None
        if agent is None or agent.startswith((APPROVER_PREFIX, OPERATOR_PREFIX)):
            await self._refuse(token)(scope, receive, send)
            return
        scope[AGENT_SCOPE_KEY] = agent
        await self.app(scope, receive, send)

    def _refuse(self, token: str | None) -> Response:
        if self.oauth is not None:
            return self.oauth.refusal(TokenRejectedError("the gateway agent key is unknown, revoked or expired")
                                      if token else None)
        response = problem_for(AuthenticationError("a gateway agent key is required (Authorization: Bearer sgk_...)"))
        response.headers["WWW-Authenticate"] = 'Bearer realm="sealtrail-gateway"'
        return response


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" else None
    return None


async def _bearer_agent(scope: Scope, keys: KeyVerifier) -> str | None:
    token = _bearer(scope)
    return await keys.agent_of(token) if token else None


def build_app(rt: Runtime) -> ASGIApp:
    server = build_server(rt.gateway, rt.sessions)
    manager = StreamableHTTPSessionManager(
        app=server, max_request_body_size=rt.cfg.max_argument_bytes * 2 + 65536, json_response=rt.cfg.json_response,
        security_settings=TransportSecuritySettings(enable_dns_rebinding_protection=False))
    fast = FastCalls(manager.asgi_app, manager, rt.gateway, json_response=rt.cfg.json_response,
                     max_body=manager.max_request_body_size, make_call=call_from_scope, registry=rt.metrics.registry)
    mcp_app = Authenticated(fast, rt.keys, rt.oauth)

    async def mcp_endpoint(scope: Scope, receive: Receive, send: Send) -> None:
        await mcp_app(scope, receive, send)

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        problems = await _readiness(rt)
        return JSONResponse({"status": "ready" if not problems else "not ready", "problems": problems},
                            status_code=200 if not problems else 503)

    async def metrics(_: Request) -> Response:
        rt.metrics.spool.set(rt.recorder.spool_depth)
        rt.metrics.ledger_up.set(1 if rt.recorder.ledger_up else 0)
        return Response(generate_latest(rt.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with manager.run():
            yield

    routes = [Route("/mcp", endpoint=_Endpoint(mcp_endpoint), methods=["GET", "POST", "DELETE"]),
              Route("/healthz", healthz), Route("/readyz", readyz), Route("/metrics", metrics),
              *approvals.routes(rt, approver=lambda r: _approver(r, rt)),
              *admin.routes(rt, operator=lambda r: _operator(r, rt)),
              *toolreview.routes(rt, operator=lambda r: _operator(r, rt)),
              *(rt.oauth.routes() if rt.oauth is not None else [])]
    return _Front(mcp_app, Starlette(routes=routes, lifespan=lifespan))


class _Front:
    """Requests to ``/mcp`` go straight to the agents' endpoint (authentication first), without
    Starlette's middleware and routing on every call; everything else, the lifespan included, goes
    to the Starlette app (which also answers ``/mcp`` with other methods: 405)."""

    def __init__(self, mcp: ASGIApp, app: Starlette) -> None:
        self.mcp, self.app = mcp, app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/mcp" and scope["method"] in _MCP_METHODS:
            await self.mcp(scope, receive, send)
        else:
            await self.app(scope, receive, send)


_MCP_METHODS = frozenset({"GET", "POST", "DELETE"})


class _Endpoint:
    """A raw ASGI callable as a Starlette route endpoint (Starlette treats non-functions as ASGI apps)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


async def _approver(request: Request, rt: Runtime) -> str:
    agent = await _bearer_agent(request.scope, rt.keys)
    if agent is None:
        raise AuthenticationError("an approver key is required (Authorization: Bearer sgk_...)")
    if not agent.startswith(APPROVER_PREFIX):
        raise PermissionDeniedError("this key belongs to an agent, not an approver")
    return agent[len(APPROVER_PREFIX):]


async def _operator(request: Request, rt: Runtime) -> str:
    agent = await _bearer_agent(request.scope, rt.keys)
    if agent is None:
        raise AuthenticationError("an operator key is required (Authorization: Bearer sgk_...)")
    if not agent.startswith(OPERATOR_PREFIX):
        raise PermissionDeniedError("this key does not belong to an operator")
    return agent[len(OPERATOR_PREFIX):]


async def _readiness(rt: Runtime) -> list[str]:
    problems = []
    if not rt.recorder.ledger_up:
        problems.append("ledger unreachable")
    try:
        await rt.store.ping()
    except Exception as e:
        problems.append(f"state database: {type(e).__name__}")
    for name, upstream in rt.gateway.upstreams.items():
        if name not in rt.cfg.servers:
            continue
        started = time.monotonic()
        try:
            await upstream.tools()
        except Exception as e:
            problems.append(f"server {name}: {type(e).__name__}")
        else:
            log.debug("server %s ready in %.1f ms", name, (time.monotonic() - started) * 1000)
    return problems

