"""The Sealtrail stack the query end-to-end tests share (see ``tests/support/query.py``).

One stack for the tests of this package, on its own database and topic; tests that change or tamper with data
work in tenants of their own, so the shared tenants ``acme`` and ``beta`` stay as seeded.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.support.query import QueryStack, call, drop_database, new_database, query_stack
from tests.support.tamper import TENANT as TAMPER_TENANT
from tests.support.tamper import audit_tenant


@pytest.fixture(scope="package")
async def stack(pg_url: str, kafka_bootstrap: str,
                tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[QueryStack]:
    """Ingest, ledger, projector and the query API, with tenants acme, beta, erase and tamper."""
    db_url = await new_database(pg_url)
    try:
        async with query_stack(db_url, kafka_bootstrap, tmp_path_factory.mktemp("ledger-keys"),
                               tenants=("acme", "beta", "erase", "tamper", "retain")) as running:
            yield running
    finally:
        await drop_database(pg_url, db_url)


@dataclass(frozen=True)
class Seed:
    """What was sent to acme and beta, by event id."""

    acme: list[dict[str, Any]]
    beta: list[dict[str, Any]]
    alice: list[str]            # acme calls concerning user:alice@example.com
    bob: list[str]              # acme calls concerning user:bob@example.com


def seed_events(now: datetime) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """30 acme tool calls spread over two agents, servers, sessions, decisions and 30 minutes,
    a third of them about Alice and some about Bob; 5 beta calls about (beta's) Alice."""
    acme = []
    for i in range(30):
        subjects = ["user:alice@example.com"] if i % 3 == 0 else (["user:Bob@Example.com"] if i % 5 == 1 else [])
        acme.append(call(
            agent_id=f"agent-{i % 2 + 1}", server_id="srv-db" if i % 4 else "srv-web",
            tool_name="db.query" if i % 4 else "web.get", tool_tier="read" if i % 2 else "write",
            decision="deny" if i % 7 == 0 else "allow", status="error" if i % 6 == 0 else "ok",
            session_id=f"s-{i % 3}", occurred_at=now - timedelta(minutes=30 - i),
            payload={"args": {"q": f"select {i}"}, "result": {"rows": i}}, subjects=subjects or None))
    beta = [call(payload={"args": {"q": f"beta {i}"}}, subjects=["user:alice@example.com"],
                 occurred_at=now - timedelta(minutes=5 - i)) for i in range(5)]
    return acme, beta


@pytest.fixture(scope="package")
async def seed(stack: QueryStack) -> Seed:
    """The seed events, logged under signed checkpoints and projected."""
    acme, beta = seed_events(datetime.now(UTC))
    await stack.send("acme", acme)
    await stack.send("beta", beta)
    await stack.settle({"acme": len(acme), "beta": len(beta)})
    alice = [e["event_id"] for e in acme if e.get("subjects") == ["user:alice@example.com"]]
    bob = [e["event_id"] for e in acme if e.get("subjects") == ["user:Bob@Example.com"]]
    return Seed(acme, beta, alice, bob)


@pytest.fixture(scope="package")
async def tamper_log(stack: QueryStack) -> int:
    """The tamper tenant's log: 40 calls under a signed checkpoint that verifies before any tampering."""
    ids = await stack.send(TAMPER_TENANT, [call(subjects=["user:tina@example.com"] if i % 4 == 0 else None,
                                                payload={"args": {"q": f"t {i}"}}) for i in range(40)])
    await stack.logged(TAMPER_TENANT, ids)
    report = await audit_tenant(stack)
    return report.entries
