"""The gateway recording into the full stack: ingest, Kafka, the ledger and PostgreSQL (started by
the test run), with the query API for verification."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from mcp.shared.exceptions import MCPError

from tests.support.gateway import agent, write_setup
from tests.support.ingest import read_topic
from tests.support.query import QueryStack, drop_database, new_database, on_port, query_stack
from tests.support.serve import cli

TENANT = "gwstack"


@pytest.fixture(scope="module")
async def own_stack(pg_url: str, kafka_bootstrap: str,
                    tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[QueryStack]:
    db_url = await new_database(pg_url)
    try:
        async with query_stack(db_url, kafka_bootstrap, tmp_path_factory.mktemp("gw-ledger-keys"),
                               tenants=(TENANT,)) as running:
            yield running
    finally:
        await drop_database(pg_url, db_url)


async def _tool_calls(stack: QueryStack, want: int, *, within_s: float = 60) -> int:
    n = 0
    for _ in range(int(within_s * 10)):
        n = int(await stack.pool.fetchval("SELECT count(*) FROM entries WHERE log_id = $1 AND type = 'tool_call'",
                                          TENANT))
        if n >= want:
            return n
        await asyncio.sleep(0.1)
    return n


async def test_calls_through_the_gateway_reach_the_full_stack(own_stack: QueryStack, tmp_path: Path) -> None:
    """12 calls through the gateway are 12 tool_call entries in PostgreSQL via ingest and Kafka, the
    log verifies through the query API, and a planted marker is on no Kafka record, in no log line of
    the gateway and in no metric."""
    marker = f"gw-marker-{uuid.uuid4().hex}"
    async with on_port(own_stack.ingest_app) as ingest_url, on_port(own_stack.query_app) as query_url:
        setup = write_setup(tmp_path, None, ledger=(ingest_url, own_stack.tokens[f"{TENANT}:gateway"]))
        gw = setup.start()
        try:
            async with agent(gw.url, setup.key("alice")) as alice, agent(gw.url, setup.key("bob")) as bob:
                for i in range(8):
                    await alice.call_tool("demo__echo", {"text": f"{marker} {i}"})
                for i in range(2):
                    await alice.call_tool("demo__lookup_customer", {"email": f"{marker}{i}@example.com"})
                for _ in range(2):
                    with pytest.raises(MCPError):
                        await bob.call_tool("demo__add", {"a": 1, "b": 2})
            assert await _tool_calls(own_stack, 12) == 12
            metrics = (await asyncio.to_thread(_metrics, gw.url))
        finally:
            gw.stop()
        assert marker not in gw.stderr() and marker not in metrics
        records = await read_topic(own_stack.settings.kafka_bootstrap, own_stack.settings.sealed_topic)
        assert len(records) >= 12
        assert all(marker.encode() not in value and marker.encode() not in key for key, value in records)
        rows = await own_stack.pool.fetch("SELECT decision, status FROM entries WHERE log_id = $1 "
                                          "AND type = 'tool_call'", TENANT)
        assert sorted((r["decision"], r["status"]) for r in rows) == [("allow", "ok")] * 10 + [("deny", "denied")] * 2
        await asyncio.sleep(2)  # a checkpoint covering the entries
        done = await asyncio.to_thread(cli, "verify", "--url", query_url, "--log", TENANT, "--token",
                                       own_stack.tokens[f"{TENANT}:auditor"])
        assert done.returncode == 0, done.stderr + done.stdout


def _metrics(url: str) -> str:
    import httpx

    return httpx.get(url + "/metrics", timeout=10).text
