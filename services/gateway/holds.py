"""Step-up holds: a call in ``step_up`` mode waits for an approver, and a retry of the same call
(same agent, server, tool and arguments) picks up the same hold.

A hold longer than ``hold_s`` answers the agent with a "pending approval ID" JSON-RPC error; the
approval stays pending until ``approval_ttl_s`` after it was asked, then the call is denied as
expired. A granted approval releases exactly one call.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any, Literal

import rfc8785

from services.gateway.ports import Approval, GatewayStore

POLL_S = 0.1


@dataclass(frozen=True, slots=True)
class HoldOutcome:
    state: Literal["granted", "refused", "expired", "pending"]
    approval: Approval
    created: bool
    """True when this call asked for the approval (the first try of the call)."""


def fingerprint(agent: str, server: str, tool: str, arguments: Any) -> str:
    doc = {"agent": agent, "server": server, "tool": tool, "arguments": arguments}
    try:
        canonical = rfc8785.dumps(doc)
    except Exception:  # arguments RFC 8785 cannot encode (e.g. huge integers): fall back to repr
        canonical = repr(doc).encode()
    return hashlib.sha256(canonical).hexdigest()


def new_approval_id() -> str:
    return "apr_" + secrets.token_hex(8)


async def hold(store: GatewayStore, *, agent: str, server: str, tool: str, arguments: Any, call_event_id: str,
               hold_s: float, ttl_s: float) -> HoldOutcome:
    """Find or ask for the approval of this call, then wait up to ``hold_s`` for a decision."""
    fp = fingerprint(agent, server, tool, arguments)
    approval = await store.find_approval(fp)
    created = False
    if approval is None:
        now = time.time()
        approval = Approval(new_approval_id(), fp, agent, server, tool, call_event_id, now, now + ttl_s)
        await store.create_approval(approval)
        created = True
    deadline = time.monotonic() + hold_s
    while True:
        if approval.status in ("granted", "refused"):
            return HoldOutcome(approval.status, approval, created)
        if approval.expired(time.time()):
            return HoldOutcome("expired", approval, created)
        if time.monotonic() >= deadline:
            return HoldOutcome("pending", approval, created)
        await asyncio.sleep(min(POLL_S, max(0.0, deadline - time.monotonic())))
        approval = await store.get_approval(approval.approval_id) or approval
