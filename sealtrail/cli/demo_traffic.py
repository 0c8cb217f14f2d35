"""Synthetic MCP traffic for ``sealtrail demo``: several agents, servers and data subjects.

:func:`scenario` builds the events (pure: a seeded random generator and a clock): a week of
ordinary calls as a baseline, a usage spike in the last complete hour, one support session with
reads, writes, a denial, a destructive call held for step-up approval and granted, a rate-limit
burst, and a tool whose definition changes between two capability snapshots. Payloads name data
subjects (``subjects`` beside each event), never the header.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sealtrail.sdk import events as ev

AGENTS = ("support-bot", "billing-agent", "ops-agent")
SUBJECTS = ("user:alice@example.com", "user:bob@example.com", "user:chen@example.com", "user:dana@example.com")
# server -> (tool, tier)
SERVERS: dict[str, tuple[tuple[str, ev.ToolTier], ...]] = {
    "crm": (("lookup_customer", "read"), ("update_customer", "write"), ("delete_customer", "destructive")),
    "files": (("read_file", "read"), ("write_file", "write"), ("delete_file", "destructive")),
    "payments": (("get_invoice", "read"), ("refund", "destructive")),
}
SESSION = "sess-support-4711"
SPIKE_TOOL = ("files", "read_file")
CHANGED_TOOL = ("crm", "update_customer")
BASELINE_HOURS = 6 * 24


def def_hash(server: str, tool: str, version: int = 1) -> str:
    return "sha256:" + hashlib.sha256(f"{server}/{tool}/v{version}".encode()).hexdigest()


@dataclass
class Scenario:
    """The events to send, in order, and the facts the demo looks up afterwards."""

    events: list[dict[str, Any]] = field(default_factory=list)
    session: str = SESSION
    reveal_event_id: str = ""
    erase_subject: str = SUBJECTS[1]
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, kind: str, event: dict[str, Any]) -> dict[str, Any]:
        self.events.append(event)
        self.counts[kind] = self.counts.get(kind, 0) + 1
        return event


def _call(rng: random.Random, at: datetime, agent: str, server: str, tool: str, tier: ev.ToolTier,
          subject: str | None = None, **extra: Any) -> dict[str, Any]:
    subject = subject or rng.choice(SUBJECTS)
    failed = rng.random() < 0.04
    fields: dict[str, Any] = {
        "agent_id": agent, "server_id": server, "tool_name": tool, "tool_tier": tier,
        "decision": "allow", "status": "error" if failed else "ok",
        "latency_ms": int(rng.lognormvariate(3.5, 0.5)), "cost_micros": rng.randrange(100, 5000),
        "currency": "EUR", "tool_def_hash": def_hash(server, tool), "policy_id": "default", "policy_version": "3",
        "payload": {"arguments": {"customer": subject.split(":", 1)[1], "ref": rng.randrange(10**6)},
                    "result": "error: upstream timeout" if failed else "ok"},
        "subjects": [subject], "occurred_at": at,
    }
    if failed:
        fields["error_type"] = "upstream_timeout"
    fields.update(extra)
    return ev.tool_call(**fields)


def _baseline(s: Scenario, rng: random.Random, now: datetime) -> None:
    """A few calls per hour of every tool over the past six days."""
    start = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=BASELINE_HOURS)
    for h in range(BASELINE_HOURS - 1):
        hour = start + timedelta(hours=h)
        for server, tools in SERVERS.items():
            for tool, tier in tools:
                for _ in range(rng.randrange(2, 5) if tier == "read" else rng.randrange(0, 2)):
                    at = hour + timedelta(seconds=rng.randrange(3600))
                    s.add("baseline call", _call(rng, at, rng.choice(AGENTS), server, tool, tier))


def _spike(s: Scenario, rng: random.Random, now: datetime) -> None:
    """The ops agent reads files 20 times as often as usual in the last complete hour."""
    hour = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    server, tool = SPIKE_TOOL
    for _ in range(160):
        at = hour + timedelta(seconds=rng.randrange(3600))
        s.add("usage spike", _call(rng, at, "ops-agent", server, tool, "read", session_id="sess-ops-batch"))


def _tool_lists(s: Scenario, now: datetime) -> None:
    """Two capability snapshots of the CRM server in the last complete hour: update_customer's
    definition changes and export_customers appears."""
    hour = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    first = [(t, def_hash("crm", t)) for t, _ in SERVERS["crm"]]
    second = [(t, def_hash("crm", t, 2 if (("crm", t) == CHANGED_TOOL) else 1)) for t, _ in SERVERS["crm"]]
    s.add("tool_list", ev.tool_list(server_id="crm", tools=first, agent_id="support-bot",
                                    occurred_at=hour + timedelta(minutes=20)))
    s.add("tool_list", ev.tool_list(server_id="crm", tools=[*second, ("export_customers", def_hash("crm", "x"))],
                                    agent_id="support-bot", occurred_at=hour + timedelta(minutes=40)))


def _session(s: Scenario, rng: random.Random, now: datetime) -> None:
    """One support session: reads, a write, a denied refund, a step-up deletion that is approved."""
    t = now - timedelta(minutes=10)
    alice = SUBJECTS[0]
    common = {"session_id": SESSION, "subject": alice}
    first = s.add("session call", _call(rng, t, "support-bot", "crm", "lookup_customer", "read", **common))
    s.reveal_event_id = first["event_id"]
    s.add("session call", _call(rng, t + timedelta(seconds=20), "support-bot", "crm", "update_customer",
                                "write", tool_def_hash=def_hash("crm", "update_customer", 2), **common))
    s.add("denial", _call(rng, t + timedelta(seconds=40), "support-bot", "payments", "refund", "destructive",
                          decision="deny", status="denied", policy_id="no-refunds-by-bots", **common))
    held = s.add("step-up", _call(rng, t + timedelta(seconds=60), "support-bot", "crm", "delete_customer",
                                  "destructive", decision="step_up", status="pending", **common))
    s.add("approval", ev.approval(approval_id="apr-9", call_event_id=held["event_id"], decision="granted",
                                  agent_id="support-bot", session_id=SESSION, server_id="crm",
                                  tool_name="delete_customer", wait_ms=42_000, subjects=[alice],
                                  payload={"approver": "maria.supervisor@example.com"},
                                  occurred_at=t + timedelta(seconds=102)))
    s.add("session call", _call(rng, t + timedelta(seconds=103), "support-bot", "crm", "delete_customer",
                                "destructive", **common))


def _burst(s: Scenario, rng: random.Random, now: datetime) -> None:
    """The billing agent hammers get_invoice; the gateway reports the limit it hits."""
    t = now - timedelta(minutes=5)
    for i in range(60):
        s.add("burst call", _call(rng, t + timedelta(milliseconds=200 * i), "billing-agent", "payments",
                                  "get_invoice", "read", session_id="sess-billing-77"))
    for i in range(5):
        s.add("rate_limit", ev.rate_limit(limit_id="per-agent-30-per-min", window_s=60, limit=30, observed=31 + 7 * i,
                                          scope="agent", agent_id="billing-agent", server_id="payments",
                                          tool_name="get_invoice", occurred_at=t + timedelta(seconds=6 + i)))


def scenario(now: datetime, *, seed: int = 7) -> Scenario:
    """Every event of the demo, oldest first within each part."""
    rng = random.Random(seed)
    s = Scenario()
    _baseline(s, rng, now)
    _spike(s, rng, now)
    _tool_lists(s, now)
    _session(s, rng, now)
    _burst(s, rng, now)
    for server in SERVERS:
        s.add("health_check", ev.health_check(server_id=server, status="healthy", latency_ms=12,
                                              occurred_at=now - timedelta(minutes=1)))
    return s
