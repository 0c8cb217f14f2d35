"""The data every query contract starts from, written through a :class:`QueryBackend`.

acme: a tool list, ten db.query calls (three of them about alice), an error, a timeout, a
denial, a step-up, five web.get calls of agent-2 (one about bob), two rate-limit events, a new
tool list that changes db.query's definition, and one call two days earlier. beta: one call of
its own tool, about its own alice. Returns what the contracts check against.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sealtrail.core.record import SealedRecord
from sealtrail.core.sealing import subject_ref
from tests.support.query_backends import T0, QueryBackend

ALICE, BOB = "email:alice@example.com", "email:bob@example.com"


def def_hash(label: str) -> str:
    return "sha256:" + hashlib.sha256(label.encode()).hexdigest()


def call(*, tool: str = "db.query", server: str = "srv-db", agent: str = "agent-1", session: str = "s-1",
         decision: str = "allow", status: str = "ok", latency_ms: int | None = 100,
         cost_micros: int | None = None, hashed: str | None = None) -> dict[str, Any]:
    f: dict[str, Any] = {"type": "tool_call", "agent_id": agent, "server_id": server, "tool_name": tool,
                         "decision": decision, "status": status, "session_id": session}
    optional = {"latency_ms": latency_ms, "tool_def_hash": hashed, "cost_micros": cost_micros,
                "currency": "USD" if cost_micros is not None else None}
    f.update({k: v for k, v in optional.items() if v is not None})
    return f


def tool_list(server: str, tools: dict[str, str]) -> dict[str, Any]:
    return {"type": "tool_list", "server_id": server, "tools": [{"name": n, "def_hash": h} for n, h in tools.items()]}


def rate_limit(observed: int) -> dict[str, Any]:
    return {"type": "rate_limit", "limit_id": "per-agent", "window_s": 60, "limit": 100, "observed": observed,
            "scope": "agent", "agent_id": "agent-1"}


@dataclass
class Seeded:
    records: dict[str, list[SealedRecord]] = field(default_factory=dict)
    alice: list[str] = field(default_factory=list)  # event ids of acme's calls about alice
    bob: list[str] = field(default_factory=list)

    def event_ids(self, tenant: str) -> list[str]:
        return [str(r.header["event_id"]) for r in self.records[tenant]]


def m(n: int) -> datetime:
    return T0 + timedelta(minutes=n)


async def acme_records(b: QueryBackend) -> list[SealedRecord]:
    alice, bob = subject_ref(b.index_keys["acme"], ALICE), subject_ref(b.index_keys["acme"], BOB)
    h1, h2 = def_hash("v1"), def_hash("v2")
    plan: list[tuple[datetime, dict[str, Any], list[bytes]]] = [(m(0), tool_list("srv-db", {"db.query": h1}), [])]
    plan += [(m(i), call(cost_micros=250, hashed=h1), [alice] if i <= 3 else []) for i in range(1, 11)]
    plan += [(m(20), call(status="error", latency_ms=3000), []), (m(21), call(status="timeout"), []),
             (m(22), call(decision="deny", status="denied", latency_ms=None), []),
             (m(23), call(decision="step_up", status="pending", latency_ms=None), [])]
    plan += [(m(70 + i), call(tool="web.get", server="srv-web", agent="agent-2", session="s-2"),
              [bob] if i == 2 else []) for i in range(5)]
    plan += [(m(80), rate_limit(130), []), (m(81), rate_limit(150), []),
             (m(90), tool_list("srv-db", {"db.query": h2}), []), (T0 - timedelta(days=2), call(tool="db.old"), [])]
    return [await b.record("acme", at, f, subject_refs=refs) for at, f, refs in plan]


async def seed(b: QueryBackend) -> Seeded:
    """Create both tenants and append their records (not yet projected)."""
    await b.tenant("acme")
    await b.tenant("beta")
    out = Seeded()
    out.records["acme"] = await acme_records(b)
    beta_alice = subject_ref(b.index_keys["beta"], ALICE)
    out.records["beta"] = [await b.record("beta", m(5), call(tool="beta.tool", server="srv-beta", agent="agent-b",
                                                              session="s-1"), subject_refs=[beta_alice])]
    for tenant, records in out.records.items():
        await b.append(tenant, records)
    ids = out.event_ids("acme")
    out.alice, out.bob = ids[1:4], [ids[17]]
    return out
