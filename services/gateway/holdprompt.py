"""A step-up hold that outlasts ``hold_seconds``, told to a client that can be asked (MCP
elicitation) instead of answered with the "pending approval" error at once.

- 2026-07-28 agents that declare the ``elicitation`` capability get the input-required result: an
  ``elicitation/create`` form asking whether to keep waiting, with the approval id as
  ``requestState``. The client answers by calling again with ``inputResponses``; on ``accept`` the
  gateway holds the call once more (same agent, tool and arguments: the same approval), on anything
  else it answers the "pending approval" error, which a later retry picks up as before.
- Handshake-era agents that declare ``elicitation`` get an ``elicitation/create`` request on the
  call's own response stream, which exists only with SSE answers (``json_response = false``): with
  JSON answers the ``mcp`` SDK gives a request no channel back to the client (its
  ``can_send_request`` is off in JSON mode), so those agents get the error as before.

The agent keeps waiting at most ``MAX_ROUNDS`` times, and never past the approval's expiry.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from mcp.server.context import ServerRequestContext
from mcp.shared.exceptions import MCPError, NoBackChannelError
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from services.gateway import errors

MAX_ROUNDS = 30
INPUT_KEY = "sealtrail.approval"
_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}}


def pending(e: MCPError) -> bool:
    return e.code == errors.PENDING_APPROVAL


def _asks(ctx: ServerRequestContext[Any, Any]) -> bool:
    caps = ctx.session.client_capabilities
    return caps is not None and caps.elicitation is not None


def _message(e: MCPError) -> str:
    return f"{e.message.split(':')[0]} — a human approver must allow this call. Keep waiting?"


def input_required(ctx: ServerRequestContext[Any, Any], e: MCPError) -> dict[str, Any] | None:
    """The 2026-07-28 input-required result for a pending hold, or None when it does not apply."""
    if ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS or not _asks(ctx):
        return None
    approval = (e.error.data or {}).get("approval_id") if isinstance(e.error.data, dict) else None
    ask = {"method": "elicitation/create", "params": {"mode": "form", "message": _message(e),
                                                       "requestedSchema": _SCHEMA}}
    return {"resultType": "input_required", "inputRequests": {INPUT_KEY: ask}, "requestState": approval or ""}


def declined(params: dict[str, Any]) -> str | None:
    """For a call that answers an input request: the approval id when the agent stopped waiting."""
    responses = params.get("inputResponses")
    if not isinstance(responses, dict) or INPUT_KEY not in responses:
        return None
    answer = responses[INPUT_KEY]
    if isinstance(answer, dict) and answer.get("action") == "accept":
        return None
    state = params.get("requestState")
    return state if isinstance(state, str) else ""


def stopped_waiting(approval_id: str) -> MCPError:
    return MCPError(errors.PENDING_APPROVAL, f"pending approval {approval_id}: the agent stopped waiting; call again "
                    "with the same arguments to pick up the decision", {"approval_id": approval_id})


async def keep_waiting(ctx: ServerRequestContext[Any, Any], e: MCPError,
                       again: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
    """Handshake era: ask the client on the call's stream, and hold again while it accepts; raise
    the pending error when it cannot be asked or declines."""
    if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS or not _asks(ctx):
        raise e
    for _ in range(MAX_ROUNDS):
        try:
            answer = await ctx.session.elicit_form(_message(e), _SCHEMA, related_request_id=ctx.request_id)
        except NoBackChannelError:  # JSON answers: no way to ask
            raise e from None
        if answer.action != "accept":
            raise e
        try:
            return await again()
        except MCPError as later:
            if not pending(later):
                raise
            e = later
    raise e
