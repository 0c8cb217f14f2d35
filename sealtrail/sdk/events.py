"""Typed builders for the v1 gateway events: UUIDv7 ids, RFC 3339 UTC timestamps, no nulls.

Each builder returns the event as a dict ready for :meth:`SealtrailClient.send`. Optional fields
left as ``None`` are omitted (the schemas refuse explicit nulls). ``payload`` holds everything
personal or sensitive and is sealed by ingest; ``subjects`` names the data subjects it concerns
(e.g. ``"user:alice@example.com"``) and never enters the log header.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from typing import Any, Literal

ToolTier = Literal["read", "write", "destructive", "unknown"]
Decision = Literal["allow", "deny", "step_up", "observe"]
CallStatus = Literal["ok", "error", "denied", "pending", "timeout"]


def uuid7(*, ms: int | None = None) -> str:
    """A UUIDv7 (RFC 9562) in lowercase 8-4-4-4-12 form: 48-bit Unix ms, then 74 random bits."""
    stamp = (time.time_ns() // 1_000_000 if ms is None else ms) & ((1 << 48) - 1)
    rand = int.from_bytes(os.urandom(10), "big")
    rand_a, rand_b = (rand >> 62) & 0xFFF, rand & ((1 << 62) - 1)
    value = (stamp << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b
    h = f"{value:032x}"  # what str(uuid.UUID(int=value)) gives, without building the object
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def timestamp(moment: datetime | None = None) -> str:
    """RFC 3339 UTC with microseconds and ``Z`` (now when ``moment`` is None)."""
    if moment is None:  # the common case, formatted without a datetime
        ns = time.time_ns()
        t = time.gmtime(ns // 1_000_000_000)
        return (f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
                f".{ns // 1000 % 1_000_000:06d}Z")
    if moment.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _event(kind: str, fields: dict[str, Any]) -> dict[str, Any]:
    occurred = fields.pop("occurred_at", None)
    event: dict[str, Any] = {
        "event_id": fields.pop("event_id", None) or uuid7(),
        "type": kind,
        "occurred_at": occurred if isinstance(occurred, str) else timestamp(occurred),
    }
    event.update((k, v) for k, v in fields.items() if v is not None)
    if "subjects" in event:
        event["subjects"] = list(event["subjects"])
    return event


def tool_call(
    *, agent_id: str, server_id: str, tool_name: str, decision: Decision, status: CallStatus,
    session_id: str | None = None, tool_tier: ToolTier | None = None, tool_def_hash: str | None = None,
    policy_id: str | None = None, policy_version: str | None = None, error_type: str | None = None,
    latency_ms: float | None = None, cost_micros: int | None = None, currency: str | None = None,
    trace_id: str | None = None, span_id: str | None = None, payload: dict[str, Any] | None = None,
    subjects: list[str] | None = None, occurred_at: datetime | str | None = None, event_id: str | None = None,
) -> dict[str, Any]:
    """One tool call (denied and step-up-held calls included)."""
    return _event("tool_call", dict(locals()))


def approval(
    *, approval_id: str, call_event_id: str, decision: Literal["granted", "refused"],
    agent_id: str | None = None, session_id: str | None = None, server_id: str | None = None,
    tool_name: str | None = None, policy_id: str | None = None, policy_version: str | None = None,
    wait_ms: int | None = None, trace_id: str | None = None, span_id: str | None = None,
    payload: dict[str, Any] | None = None, subjects: list[str] | None = None,
    occurred_at: datetime | str | None = None, event_id: str | None = None,
) -> dict[str, Any]:
    """A step-up request granted or refused; the approver's identity belongs in ``payload``."""
    return _event("approval", dict(locals()))


def rate_limit(
    *, limit_id: str, window_s: int, limit: int, observed: int,
    scope: Literal["tenant", "agent", "session", "server", "tool"] | None = None,
    agent_id: str | None = None, session_id: str | None = None, server_id: str | None = None,
    tool_name: str | None = None, payload: dict[str, Any] | None = None, subjects: list[str] | None = None,
    occurred_at: datetime | str | None = None, event_id: str | None = None,
) -> dict[str, Any]:
    """A rate limit was reached."""
    return _event("rate_limit", dict(locals()))


def health_check(
    *, server_id: str, status: Literal["healthy", "degraded", "unhealthy"], latency_ms: float | None = None,
    error_type: str | None = None, payload: dict[str, Any] | None = None,
    occurred_at: datetime | str | None = None, event_id: str | None = None,
) -> dict[str, Any]:
    """The result of probing one tool server."""
    return _event("health_check", dict(locals()))


def tool_list(
    *, server_id: str, tools: list[tuple[str, str]], agent_id: str | None = None,
    session_id: str | None = None, payload: dict[str, Any] | None = None,
    occurred_at: datetime | str | None = None, event_id: str | None = None,
) -> dict[str, Any]:
    """A capability snapshot: ``tools`` as (name, ``sha256:<hex>`` definition hash) pairs."""
    fields = dict(locals())
    fields["tools"] = [{"name": name, "def_hash": def_hash} for name, def_hash in tools]
    return _event("tool_list", fields)


def server_status(
    *, server_id: str, state: Literal["active", "inactive"], payload: dict[str, Any] | None = None,
    occurred_at: datetime | str | None = None, event_id: str | None = None,
) -> dict[str, Any]:
    """A tool server became active or inactive (any free-text reason goes in ``payload``)."""
    return _event("server_status", dict(locals()))


def credential_rotation(
    *, server_id: str, credential_id: str,
    reason: Literal["scheduled", "suspected_compromise", "manual"] | None = None,
    expires_at: datetime | None = None, payload: dict[str, Any] | None = None,
    occurred_at: datetime | str | None = None, event_id: str | None = None,
) -> dict[str, Any]:
    """A server credential was rotated; ``credential_id`` is a label, never the secret."""
    fields = dict(locals())
    fields["expires_at"] = None if expires_at is None else timestamp(expires_at)
    return _event("credential_rotation", fields)
