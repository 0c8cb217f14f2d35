"""Approving and rejecting held calls: one function for the CLI and the HTTP API, which records the
decision and the approver's identity as an ``approval`` event (the identity and reason in the
sealed payload, never in the header).

HTTP (approver keys only, see ``sealtrail gateway key create --approver NAME``):
``GET /v1/approvals?status=pending``, ``POST /v1/approvals/{id}/approve``,
``POST /v1/approvals/{id}/reject`` with ``{"reason": "..."}``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sealtrail.errors import ConflictError, InvalidInputError, NotFoundError, SealtrailError
from sealtrail.infra.problems import problem_for
from sealtrail.sdk import events
from services.gateway.ports import Approval, ApprovalStateError, GatewayStore

if TYPE_CHECKING:
    from services.gateway.app import Runtime

Record = Callable[[dict[str, Any]], Awaitable[None]]
STATUSES = ("pending", "granted", "refused", "consumed")


async def decide(store: GatewayStore, record: Record, *, approval_id: str, granted: bool, by: str,
                 reason: str | None, policy_id: str | None = None, policy_version: str | None = None) -> Approval:
    """Decide a pending approval once and record it; NotFoundError or ConflictError otherwise."""
    if not by.strip():
        raise InvalidInputError("an approver name is required", pointer="/by")
    now = time.time()
    try:
        done = await store.decide_approval(approval_id, granted=granted, by=by, reason=reason, at=now)
    except KeyError as e:
        raise NotFoundError(f"no approval {approval_id}") from e
    except ApprovalStateError as e:
        raise ConflictError(str(e)) from e
    payload: dict[str, Any] = {"approver": by}
    if reason:
        payload["reason"] = reason
    await record(events.approval(
        approval_id=done.approval_id, call_event_id=done.call_event_id, decision="granted" if granted else "refused",
        agent_id=done.agent, server_id=done.server, tool_name=done.tool, policy_id=policy_id,
        policy_version=policy_version, wait_ms=int(max(0.0, now - done.created_at) * 1000), payload=payload))
    return done


def public(a: Approval) -> dict[str, Any]:
    """An approval as the API and the CLI show it (no arguments: they stay in the sealed record)."""
    shown = asdict(a)
    shown.pop("fingerprint")
    if a.expired(time.time()):
        shown["status"] = "expired"
    return shown


def routes(rt: Runtime, *, approver: Callable[[Request], Awaitable[str]]) -> list[Route]:
    async def listing(request: Request) -> Response:
        try:
            await approver(request)
            status = request.query_params.get("status")
            if status is not None and status not in STATUSES:
                raise InvalidInputError(f"status must be one of {list(STATUSES)}", pointer="/status")
            found = await rt.store.list_approvals(status)  # type: ignore[arg-type]
            return JSONResponse({"approvals": [public(a) for a in found]})
        except SealtrailError as e:
            return problem_for(e)

    async def approve(request: Request) -> Response:
        return await _decide(request, granted=True)

    async def reject(request: Request) -> Response:
        return await _decide(request, granted=False)

    async def _decide(request: Request, *, granted: bool) -> Response:
        try:
            by = await approver(request)
            body = await request.body()
            doc = orjson.loads(body) if body else {}
            reason = doc.get("reason") if isinstance(doc, dict) else None
            if reason is not None and not isinstance(reason, str):
                raise InvalidInputError("reason must be a string", pointer="/reason")
            done = await decide(rt.store, rt.recorder.record, approval_id=request.path_params["approval_id"],
                                granted=granted, by=by, reason=reason, policy_id=rt.cfg.policy_id,
                                policy_version=rt.gateway.version)
            return JSONResponse(public(done))
        except orjson.JSONDecodeError:
            return problem_for(InvalidInputError("the body is not JSON"))
        except SealtrailError as e:
            return problem_for(e)

    return [Route("/v1/approvals", listing, methods=["GET"]),
            Route("/v1/approvals/{approval_id}/approve", approve, methods=["POST"]),
            Route("/v1/approvals/{approval_id}/reject", reject, methods=["POST"])]
