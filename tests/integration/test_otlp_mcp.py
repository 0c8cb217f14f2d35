"""A real MCP server on the ``mcp`` SDK with OpenTelemetry export to ``sealtrail serve``: its own
``tools/call`` spans put every tool call in the ledger exactly once."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters

from tests.support.embedded import read_rows
from tests.support.serve import TENANT, Served, cli, create_key, start_serve, wait_for_checkpoint

ROOT = Path(__file__).resolve().parents[2]
N_CALLS = 1000
N_REFUSED = 10  # the mcp SDK takes ~1.3 s to answer each tool that raises


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    running = start_serve(tmp_path / "data", logs=tmp_path)
    try:
        yield running
    finally:
        running.stop()


def _server_env(served: Served) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OTEL_SERVICE_NAME": "crm-mcp",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{served.url}/v1/traces",
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS": f"Authorization=Bearer {served.tokens['gateway']}",
            "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "60", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "256"}


async def test_every_mcp_tool_call_is_one_ledger_entry(served: Served) -> None:
    """1,000 tools/call through the mcp SDK client to an mcp SDK server that exports its spans
    through two pipelines (each span sent twice): exactly 1,000 tool_call entries, 10 of them
    errors, named by the server's service, and `sealtrail verify` passes."""
    params = StdioServerParameters(command=sys.executable, args=["-m", "tests.support.mcp_otel_server", "--twice"],
                                   env=_server_env(served), cwd=str(ROOT))
    async with Client(params, mode="legacy", cache=None) as client:
        for i in range(N_CALLS - N_REFUSED):
            if i % 2:
                result = await client.call_tool("add", {"a": i, "b": 1})
            else:
                result = await client.call_tool("lookup_customer", {"email": f"user{i}@example.com"})
            assert not result.is_error
        for i in range(N_REFUSED):
            assert (await client.call_tool("refuse", {"reason": f"r{i}"})).is_error
    # The server flushed its spans on exit (the client closed its stdin).
    auditor = create_key(served, "auditor")
    db = served.data_dir / "sealtrail.db"
    size = wait_for_checkpoint(served.url, auditor, TENANT, N_CALLS, timeout=120)
    rows = read_rows(db, "SELECT tool_name, server_id, agent_id, status FROM entries WHERE log_id = ? "
                     "AND type = 'tool_call'", (TENANT,))
    assert size == N_CALLS and len(rows) == N_CALLS
    assert {r[1:3] for r in rows} == {("crm-mcp", "crm-mcp")}
    assert sorted({r[0] for r in rows}) == ["add", "lookup_customer", "refuse"]
    assert sum(r[3] == "error" for r in rows) == N_REFUSED
    assert sum(r[0] == "refuse" for r in rows) == N_REFUSED
    done = cli("verify", "--url", served.url, "--log", TENANT, "--token", auditor)
    assert done.returncode == 0, done.stderr
    assert f"{N_CALLS} entries" in done.stdout, done.stdout


def test_mcp_client_spans_are_tool_calls_too(served: Served) -> None:
    """The client side: an mcp SDK client exporting its own `MCP send tools/call {tool}` spans
    (which carry no gen_ai.tool.name) puts each of its 200 calls in the ledger once, the tool
    named from the span name, the agent from its service name, the server unknown."""
    env = {**_server_env(served), "OTEL_SERVICE_NAME": "support-agent"}
    done = subprocess.run([sys.executable, "-m", "tests.support.mcp_otel_client", "200"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    wait_for_checkpoint(served.url, create_key(served, "auditor"), TENANT, 200, timeout=120)
    rows = read_rows(served.data_dir / "sealtrail.db", "SELECT tool_name, server_id, agent_id FROM entries "
                     "WHERE log_id = ? AND type = 'tool_call'", (TENANT,))
    assert len(rows) == 200
    assert sorted(set(rows)) == [("add", "unknown", "support-agent"), ("lookup_customer", "unknown", "support-agent")]
