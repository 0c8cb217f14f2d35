"""The operators' HTTP API of a gateway: stored credentials, health checks and server status.

Operator keys only (``sealtrail gateway key create --operator NAME``; ``Authorization: Bearer
sgk_...``): agent and approver keys get 403. Values of credentials are accepted (set, rotate) and
never returned. Errors are RFC 9457 problem details.

- ``GET /v1/credentials[?server=S]``; ``PUT /v1/credentials/{server}`` with ``{"kind": "bearer" |
  "header" | "env", "name": "...", "secret": "..."}``; ``POST /v1/credentials/{server}/rotate`` with
  ``{"secret": "...", "reason": "manual"}`` (409 when the check with the new value fails).
- ``GET /v1/health``; ``POST /v1/health/{server}`` runs a check now (200 passed, 503 failed).
- ``GET /v1/servers`` (status, health, credential version of each); ``POST
  /v1/servers/{server}/disable`` and ``/enable`` with ``{"reason": "..."}``;
  ``GET /v1/servers/{server}/history``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sealtrail.core.sealing import Kek
from sealtrail.errors import InvalidInputError, SealtrailError, ServiceStartError
from sealtrail.infra.problems import problem_for
from services.gateway import credentials, status
from services.gateway.health import HealthMonitor
from services.gateway.ports import GatewayStore, ServerState

if TYPE_CHECKING:
    from services.gateway.app import Runtime

Operator = Callable[[Request], Awaitable[str]]
Handler = Callable[[Request, str], Awaitable[Response]]


def routes(rt: Runtime, *, operator: Operator) -> list[Route]:
    def guarded(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                return await handler(request, await operator(request))
            except orjson.JSONDecodeError:
                return problem_for(InvalidInputError("the body is not JSON"))
            except SealtrailError as e:
                return problem_for(e)
        return endpoint

    def monitor() -> HealthMonitor:
        if rt.health is None:
            raise ServiceStartError("health checks are not running in this gateway")
        return rt.health

    async def list_credentials(request: Request, _: str) -> Response:
        rows = await rt.store.list_credentials(request.query_params.get("server"))
        return JSONResponse({"credentials": [credentials.public(r) for r in rows]})

    async def set_credential(request: Request, by: str) -> Response:
        server = credentials.server_of(rt.cfg, request.path_params["server"])
        doc = await _body(request)
        kind = doc.get("kind")
        if kind not in credentials.KINDS:
            raise InvalidInputError(f"kind must be one of {list(credentials.KINDS)}", pointer="/kind")
        row = await credentials.set_credential(
            rt.store, _kek(rt), rt.recorder.record, server, kind=kind, name=_str(doc, "name", optional=True) or None,
            secret=_str(doc, "secret"), by=by)
        await _reconnect(rt, server.name)
        return JSONResponse(credentials.public(row), status_code=201)

    async def rotate(request: Request, by: str) -> Response:
        doc = await _body(request)
        row, report = await monitor().rotate(request.path_params["server"], _str(doc, "secret"), by=by,
                                             reason=_str(doc, "reason", optional=True) or "manual")
        return JSONResponse({"credential": credentials.public(row), "check": report.public()})

    async def health(_: Request, __: str) -> Response:
        return JSONResponse({"servers": [asdict(h) for h in await rt.store.list_health()]})

    async def check(request: Request, _: str) -> Response:
        report = await monitor().check(request.path_params["server"])
        return JSONResponse(report.public(), status_code=200 if report.status == "ok" else 503)

    async def servers(_: Request, __: str) -> Response:
        return JSONResponse({"servers": await overview(rt.store, list(rt.cfg.servers))})

    async def change(request: Request, by: str) -> Response:
        server = credentials.server_of(rt.cfg, request.path_params["server"]).name
        state: ServerState = "inactive" if request.url.path.endswith("/disable") else "active"
        done = await status.change_state(rt.store, rt.recorder.record, server=server, state=state,
                                         reason=_str(await _body(request), "reason"), by=by)
        if rt.guard is not None:
            rt.guard.invalidate()
        return JSONResponse(status.public(done))

    async def history(request: Request, _: str) -> Response:
        server = credentials.server_of(rt.cfg, request.path_params["server"]).name
        return JSONResponse({"history": [status.public(c) for c in await rt.store.status_history(server)]})

    return [Route("/v1/credentials", guarded(list_credentials), methods=["GET"]),
            Route("/v1/credentials/{server}", guarded(set_credential), methods=["PUT"]),
            Route("/v1/credentials/{server}/rotate", guarded(rotate), methods=["POST"]),
            Route("/v1/health", guarded(health), methods=["GET"]),
            Route("/v1/health/{server}", guarded(check), methods=["POST"]),
            Route("/v1/servers", guarded(servers), methods=["GET"]),
            Route("/v1/servers/{server}/disable", guarded(change), methods=["POST"]),
            Route("/v1/servers/{server}/enable", guarded(change), methods=["POST"]),
            Route("/v1/servers/{server}/history", guarded(history), methods=["GET"])]


async def overview(store: GatewayStore, servers: list[str]) -> list[dict[str, Any]]:
    """Each configured server's status, health and current credential version (for CLI and API)."""
    inactive = await store.inactive_servers()
    health = {h.server: h for h in await store.list_health()}
    out = []
    for name in servers:
        cred = await store.current_credential(name)
        h = health.get(name)
        off = inactive.get(name)
        out.append({"server": name, "state": "inactive" if off else "active",
                    "reason": off.reason if off else None,
                    "health": h.state if h else "unknown", "last_check": h.status if h else None,
                    "checked_at": h.checked_at if h else None, "failures": h.failures if h else 0,
                    "credential_version": cred.version if cred else None})
    return out


def _kek(rt: Runtime) -> Kek:
    if rt.kek is None:
        raise ServiceStartError("stored credentials need [state] kek_file in the gateway configuration")
    return rt.kek


async def _reconnect(rt: Runtime, server: str) -> None:
    live = rt.gateway.upstreams.get(server)
    if live is not None:
        await live.close()


async def _body(request: Request) -> dict[str, Any]:
    body = await request.body()
    doc = orjson.loads(body) if body else {}
    if not isinstance(doc, dict):
        raise InvalidInputError("the body must be a JSON object")
    return doc


def _str(doc: dict[str, Any], key: str, *, optional: bool = False) -> str:
    value = doc.get(key)
    if value is None and optional:
        return ""
    if not isinstance(value, str) or not value:
        raise InvalidInputError(f"{key} must be a non-empty string", pointer=f"/{key}")
    return value
