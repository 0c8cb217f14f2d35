"""Pure aggregation of one batch of entries of one log into read-model deltas.

Every delta merges into the stored rows by sums, minima and maxima over totally ordered keys, so
the stored result never depends on where batch boundaries fall or on the order logs are
projected in: an incremental projection and a rebuild produce the same rows. The one exception
is tool-list snapshots, which are diffed in log order (:mod:`services.projector.tooldefs`).

No I/O here; the PostgreSQL adapter writes what :func:`aggregate` returns.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from sealtrail.core import histogram
from sealtrail.core.callstats import CallCounters

ERROR_STATUSES = frozenset({"error", "timeout"})
EXECUTED_STATUSES = frozenset({"ok", "error", "timeout"})
MAX_LATENCY_MS = 2**53 - 1


@dataclass(frozen=True, slots=True)
class ProjectedEntry:
    """One committed entry: where it sits, when it happened, and its parsed header."""

    log_id: str
    idx: int
    occurred_at: datetime
    header: dict[str, Any]

    @classmethod
    def parse(cls, *, log_id: str, idx: int, occurred_at: datetime, entry: bytes) -> ProjectedEntry:
        header = orjson.loads(entry)
        return cls(log_id, idx, occurred_at, header if isinstance(header, dict) else {})

    @property
    def type(self) -> str:
        return text(self.header, "type")


def text(h: dict[str, Any], name: str) -> str:
    """A header string, or '' when absent or not a string."""
    v = h.get(name)
    return v if isinstance(v, str) else ""


def count(h: dict[str, Any], name: str) -> int | None:
    """A non-negative integer header field, or None."""
    v = h.get(name)
    return v if type(v) is int and v >= 0 else None


def latency_ms(h: dict[str, Any]) -> int | float | None:
    """The header's latency in milliseconds, whole or fractional (12.5, 0.042), or None."""
    v = h.get("latency_ms")
    return v if (type(v) is int or type(v) is float) and 0 <= v <= MAX_LATENCY_MS else None


def hour_of(t: datetime) -> datetime:
    return t.replace(minute=0, second=0, microsecond=0)


def day_of(t: datetime) -> datetime:
    return t.replace(hour=0, minute=0, second=0, microsecond=0)


@dataclass(slots=True)
class CallStats(CallCounters):
    """Sums over tool calls with one key: outcome counters, latency histogram and sum, cost."""

    cost_micros: int = 0


# (bucket, server_id, tool_name, agent_id, decision, status, currency)
RollupKey = tuple[datetime, str, str, str, str, str, str]
# (bucket, server_id, tool_name, currency)
ToolKey = tuple[datetime, str, str, str]
# (bucket, server_id, tool_name): every currency together
MergedToolKey = tuple[datetime, str, str]
# (bucket, currency): every tool and agent together
TenantKey = tuple[datetime, str]
# (bucket, agent_id, currency)
AgentKey = tuple[datetime, str, str]
# (bucket, limit_id, scope, agent_id, server_id, tool_name)
RateKey = tuple[datetime, str, str, str, str, str]
# (agent_id, server_id, tool_name)
UsageKey = tuple[str, str, str]


@dataclass(slots=True)
class RateStats:
    events: int = 0
    max_observed: int = 0
    max_limit: int = 0
    max_window_s: int = 0


@dataclass(slots=True)
class SessionStats:
    log_id: str
    first_at: datetime
    last_at: datetime
    first_idx: int
    last_idx: int
    agent_id: str | None = None
    events: int = 0
    calls: int = 0
    errors: int = 0
    denials: int = 0


@dataclass(slots=True)
class UsageStats:
    first: tuple[datetime, str, int]  # (occurred_at, log_id, idx) of the first use
    last_used_at: datetime
    calls: int = 0
    def_hash: tuple[datetime, str] | None = None  # (occurred_at, def_hash) of the latest hashed call


@dataclass(frozen=True, slots=True)
class ToolSnapshot:
    """One tool_list event: the tools a server offered, in log order."""

    log_id: str
    idx: int
    occurred_at: datetime
    server_id: str
    tools: tuple[tuple[str, str], ...]  # (name, def_hash)


@dataclass(frozen=True, slots=True)
class KeyUse:
    """An entry and the key ids that seal it (period and subject; the adapter keeps subject keys)."""

    key_ids: tuple[str, ...]
    log_id: str
    idx: int
    occurred_at: datetime


@dataclass
class BatchDelta:
    """Everything one batch adds to the read models."""

    hourly: dict[RollupKey, CallStats] = field(default_factory=dict)
    tool_hourly: dict[ToolKey, CallStats] = field(default_factory=dict)
    tool_daily: dict[ToolKey, CallStats] = field(default_factory=dict)
    tool_hourly_merged: dict[MergedToolKey, CallStats] = field(default_factory=dict)
    tenant_hourly: dict[TenantKey, CallStats] = field(default_factory=dict)
    agent_hourly: dict[AgentKey, CallStats] = field(default_factory=dict)
    agent_daily: dict[AgentKey, CallStats] = field(default_factory=dict)
    rate_limits: dict[RateKey, RateStats] = field(default_factory=dict)
    sessions: dict[str, SessionStats] = field(default_factory=dict)
    usage: dict[UsageKey, UsageStats] = field(default_factory=dict)
    snapshots: list[ToolSnapshot] = field(default_factory=list)
    key_uses: list[KeyUse] = field(default_factory=list)


def aggregate(entries: Iterable[ProjectedEntry]) -> BatchDelta:
    """The deltas of ``entries`` (one log, ascending index)."""
    delta = BatchDelta()
    for e in entries:
        kind = e.type
        if kind == "tool_call":
            _tool_call(delta, e)
        elif kind == "rate_limit":
            _rate_limit(delta, e)
        elif kind == "tool_list":
            _tool_list(delta, e)
        _session(delta, e, kind)
        key_ids = e.header.get("key_ids")
        if isinstance(key_ids, list) and key_ids:
            delta.key_uses.append(KeyUse(tuple(k for k in key_ids if isinstance(k, str)), e.log_id, e.idx,
                                         e.occurred_at))
    return delta


def _tool_call(delta: BatchDelta, e: ProjectedEntry) -> None:
    h = e.header
    agent, server, tool = text(h, "agent_id"), text(h, "server_id"), text(h, "tool_name")
    decision, status = text(h, "decision"), text(h, "status")
    cost = count(h, "cost_micros")
    currency = text(h, "currency") if cost is not None else ""
    hour, day = hour_of(e.occurred_at), day_of(e.occurred_at)
    outcome = (status == "ok", status in ERROR_STATUSES, status in EXECUTED_STATUSES, decision == "deny",
               decision == "step_up")
    exact = latency_ms(h)
    # The histogram takes the exact value; the sum (for the mean) stays in whole milliseconds,
    # each latency rounded to the nearest one, halves up.
    bucket = None if exact is None else histogram.bucket_of(exact)
    latency = None if exact is None else math.floor(exact + 0.5)
    for stats in (_stats(delta.hourly, (hour, server, tool, agent, decision, status, currency)),
                  _stats(delta.tool_hourly, (hour, server, tool, currency)),
                  _stats(delta.tool_daily, (day, server, tool, currency)),
                  _stats(delta.tool_hourly_merged, (hour, server, tool)),
                  _stats(delta.tenant_hourly, (hour, currency)),
                  _stats(delta.agent_hourly, (hour, agent, currency)),
                  _stats(delta.agent_daily, (day, agent, currency))):
        _count(stats, outcome, cost or 0, latency, bucket)
    _usage(delta, e, (agent, server, tool))


def _stats(table: dict[Any, CallStats], key: Any) -> CallStats:
    stats = table.get(key)
    if stats is None:
        stats = table[key] = CallStats()
    return stats


def _count(s: CallStats, outcome: tuple[bool, bool, bool, bool, bool], cost: int, latency: int | None,
           bucket: int | None) -> None:
    ok, error, executed, denied, step_up = outcome
    s.calls += 1
    s.ok += ok
    s.errors += error
    s.executed += executed
    s.denied += denied
    s.step_up += step_up
    s.cost_micros += cost
    if latency is not None and bucket is not None:
        s.latency_n += 1
        s.latency_sum += latency
        s.hist[bucket] += 1


def _usage(delta: BatchDelta, e: ProjectedEntry, key: UsageKey) -> None:
    at = (e.occurred_at, e.log_id, e.idx)
    u = delta.usage.get(key)
    if u is None:
        u = delta.usage[key] = UsageStats(first=at, last_used_at=e.occurred_at)
    u.first = min(u.first, at)
    u.last_used_at = max(u.last_used_at, e.occurred_at)
    u.calls += 1
    def_hash = text(e.header, "tool_def_hash")
    if def_hash:
        hashed = (e.occurred_at, def_hash)
        u.def_hash = hashed if u.def_hash is None else max(u.def_hash, hashed)


def _rate_limit(delta: BatchDelta, e: ProjectedEntry) -> None:
    h = e.header
    key = (hour_of(e.occurred_at), text(h, "limit_id"), text(h, "scope"), text(h, "agent_id"),
           text(h, "server_id"), text(h, "tool_name"))
    stats = delta.rate_limits.get(key)
    if stats is None:
        stats = delta.rate_limits[key] = RateStats()
    stats.events += 1
    stats.max_observed = max(stats.max_observed, count(h, "observed") or 0)
    stats.max_limit = max(stats.max_limit, count(h, "limit") or 0)
    stats.max_window_s = max(stats.max_window_s, count(h, "window_s") or 0)


def _tool_list(delta: BatchDelta, e: ProjectedEntry) -> None:
    tools = e.header.get("tools")
    pairs: list[tuple[str, str]] = []
    if isinstance(tools, list):
        for t in tools:
            if isinstance(t, dict) and text(t, "name") and text(t, "def_hash"):
                pairs.append((text(t, "name"), text(t, "def_hash")))
    delta.snapshots.append(ToolSnapshot(e.log_id, e.idx, e.occurred_at, text(e.header, "server_id"),
                                        tuple(pairs)))


def _session(delta: BatchDelta, e: ProjectedEntry, kind: str) -> None:
    session_id = text(e.header, "session_id")
    if not session_id:
        return
    s = delta.sessions.get(session_id)
    if s is None:
        s = delta.sessions[session_id] = SessionStats(e.log_id, e.occurred_at, e.occurred_at, e.idx, e.idx)
    s.first_at, s.last_at = min(s.first_at, e.occurred_at), max(s.last_at, e.occurred_at)
    s.first_idx, s.last_idx = min(s.first_idx, e.idx), max(s.last_idx, e.idx)
    agent = text(e.header, "agent_id")
    if agent and (s.agent_id is None or agent < s.agent_id):
        s.agent_id = agent
    s.events += 1
    if kind == "tool_call":
        s.calls += 1
        s.errors += text(e.header, "status") in ERROR_STATUSES
        s.denials += text(e.header, "decision") == "deny"
