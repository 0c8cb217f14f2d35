"""What operators review about upstream tools, for the CLI (``sealtrail gateway tools``) and the
operators' HTTP API:

- ``pending``: tools an upstream lists that no agent may call yet (``new``: the configuration gives
  no tier, or no agent's allow-list names it), and allowed tools whose definition changed since it
  was approved (``changed``; ``blocked`` when their ``on_change`` policy is ``block``), each with the
  tier its MCP annotations suggest (a hint from the server, never a decision);
- ``list``: every pin, removed tools included;
- ``approve SERVER/TOOL``: the current definition becomes the approved one (shared with every gateway
  through the state database) and an ``approval`` event records who approved which hash.

HTTP (operator keys): ``GET /v1/tools?state=pending|all``, ``POST /v1/tools/{server}/{tool}/approve``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sealtrail.errors import ConflictError, InvalidInputError, NotFoundError, SealtrailError
from sealtrail.infra.problems import problem_for
from sealtrail.sdk import events
from services.gateway import pinning
from services.gateway.config import GatewayConfig, Tier
from services.gateway.pinning import Pin
from services.gateway.ports import PinStateError, PinStore

if TYPE_CHECKING:
    from services.gateway.app import Runtime

Record = Callable[[dict[str, Any]], Awaitable[None]]
STATES = ("pending", "all")


def review(cfg: GatewayConfig, pins: list[Pin], *, everything: bool = False) -> list[dict[str, Any]]:
    """Pins as operators see them; only those pending a decision unless ``everything``."""
    shown = []
    for pin in pins:
        entry = _entry(cfg, pin)
        if everything or entry["state"] in ("new", "changed"):
            shown.append(entry)
    return shown


def _entry(cfg: GatewayConfig, pin: Pin) -> dict[str, Any]:
    server = cfg.servers.get(pin.server)
    declared = None if server is None else server.tools.get(pin.tool)
    tier: Tier | None = None if declared is None or server is None else (declared.tier or server.tier_default)
    ref = f"{pin.server}/{pin.tool}"
    agents = sorted(a.name for a in cfg.agents.values()
                    if declared is not None and (ref in a.allow or f"{pin.server}/*" in a.allow))
    definition = json.loads(pin.definition)
    entry: dict[str, Any] = {
        "server": pin.server, "tool": pin.tool, "def_hash": pin.def_hash, "approved_hash": pin.approved_hash,
        "tier": tier, "agents": agents, "suggested_tier": pinning.suggest_tier(definition),
        "hints": pinning.hints(definition), "first_seen": pin.first_seen, "changed_at": pin.changed_at,
        "approved_by": pin.approved_by, "approved_at": pin.approved_at,
    }
    if not pin.listed:
        entry["state"] = "removed"
    elif tier is None or not agents:
        entry["state"] = "new"
        entry["missing"] = [m for m, gone in (("tier", tier is None), ("allow", not agents)) if gone]
    elif pin.changed:
        policy = pinning.on_change((declared.on_change if declared else None) or (server.on_change if server
                                                                                     else None), tier)
        entry.update(state="changed", on_change=policy, blocked=policy == "block")
    else:
        entry["state"] = "pinned"
    return entry


async def approve(store: PinStore, record: Record, cfg: GatewayConfig, *, ref: str, by: str,
                  policy_version: str | None = None) -> Pin:
    """Approve the current definition of ``SERVER/TOOL`` and record it; NotFoundError or ConflictError
    otherwise."""
    server, sep, tool = ref.partition("/")
    if not sep or not server or not tool:
        raise InvalidInputError(f"expected SERVER/TOOL, got {ref[:200]!r}", pointer="/tool")
    if not by.strip():
        raise InvalidInputError("an approver name is required", pointer="/by")
    before = {p.tool: p for p in await store.list_pins(server)}.get(tool)
    try:
        done = await store.approve_pin(server, tool, by=by, at=time.time())
    except KeyError as e:
        raise NotFoundError(f"no pinned tool {server}/{tool}: the gateway has not seen it listed") from e
    except PinStateError as e:
        raise ConflictError(str(e)) from e
    await record(events.approval(
        approval_id=f"tool:{server}/{tool}@{done.def_hash[7:23]}"[:256],
        call_event_id=done.change_event or events.uuid7(),
        decision="granted", server_id=server, tool_name=tool, policy_id=cfg.policy_id, policy_version=policy_version,
        payload={"approver": by, "kind": "tool_definition", "def_hash": done.def_hash,
                 "previous_hash": None if before is None else before.approved_hash}))
    return done


def routes(rt: Runtime, *, operator: Callable[[Request], Awaitable[str]]) -> list[Route]:
    async def listing(request: Request) -> Response:
        try:
            await operator(request)
            state = request.query_params.get("state", "pending")
            if state not in STATES:
                raise InvalidInputError(f"state must be one of {list(STATES)}", pointer="/state")
            pins = await rt.store.list_pins(request.query_params.get("server"))
            return JSONResponse({"tools": review(rt.cfg, pins, everything=state == "all")})
        except SealtrailError as e:
            return problem_for(e)

    async def approving(request: Request) -> Response:
        try:
            by = await operator(request)
            ref = f"{request.path_params['server']}/{request.path_params['tool']}"
            done = await approve(rt.store, rt.recorder.record, rt.cfg, ref=ref, by=by,
                                 policy_version=rt.gateway.version)
            rt.gateway.discovery.forget(done.server)
            return JSONResponse(_entry(rt.cfg, done))
        except SealtrailError as e:
            return problem_for(e)

    return [Route("/v1/tools", listing, methods=["GET"]),
            Route("/v1/tools/{server}/{tool}/approve", approving, methods=["POST"])]
