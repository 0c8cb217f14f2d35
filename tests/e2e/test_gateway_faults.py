"""Bad input and upstream faults through the gateway: each gets a JSON-RPC error that says what
happened, the event is recorded, and the gateway keeps serving other calls."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import mcp_types as types
import pytest
from mcp.shared.exceptions import MCPError
from pydantic import TypeAdapter

from tests.support.gateway import EXAMPLE_SERVER, GatewayProc, Setup, agent, wait_events, write_setup
from tests.support.serve import Served, free_port, start_serve

GARBAGE = Path(__file__).resolve().parents[1] / "support" / "gateway_garbage_server.py"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    s = start_serve(tmp_path_factory.mktemp("gwf-ledger") / "data")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def http_upstream() -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(EXAMPLE_SERVER), "--http", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.1)
    yield port, proc
    if proc.poll() is None:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def setup(served: Served, http_upstream: tuple[int, subprocess.Popen[bytes]],
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    extra = f"""
[servers.junk]
command = ["{sys.executable}", "{GARBAGE}"]
tier_default = "read"
timeout_seconds = 3
[servers.junk.tools.not_json]
[servers.junk.tools.bad_result]

[servers.remote]
url = "http://127.0.0.1:{http_upstream[0]}/mcp"
tier_default = "read"
[servers.remote.tools.echo]
"""
    s = write_setup(tmp_path_factory.mktemp("gwf"), served, extra=extra,
                    alice_extra=', "junk/*", "remote/*"')
    s.start()
    yield s
    s.stop_all()


@pytest.fixture(scope="module")
def gw(setup: Setup) -> GatewayProc:
    return setup.gateways[0]


def _text(result: Any) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


def _event(served: Served, tool: str, status: str) -> dict[str, Any]:
    found = wait_events(served, lambda e: e["type"] == "tool_call" and e["tool_name"] == tool
                        and e["status"] == status, 1)
    assert found, f"no {status} event for {tool}"
    return found[0]


async def _still_serves(gw: GatewayProc, token: str) -> None:
    async with agent(gw.url, token) as c:
        assert _text(await c.call_tool("demo__echo", {"text": "alive"})) == "alive"


async def test_upstream_crash_mid_call(setup: Setup, gw: GatewayProc, served: Served) -> None:
    """The stdio server exits during the call: -32004 saying so, an error event, and the next call
    restarts the server."""
    token = setup.key("alice")
    async with agent(gw.url, token) as c:
        with pytest.raises(MCPError) as crashed:
            await c.call_tool("demo__crash", {})
        assert crashed.value.code == -32004 and "crashed or exited" in crashed.value.message
        assert _text(await c.call_tool("demo__add", {"a": 2, "b": 3})) == "5"
    assert _event(served, "crash", "error")["error_type"] == "upstream_failed"


async def test_upstream_hang_times_out(setup: Setup, gw: GatewayProc, served: Served) -> None:
    """sleep has a 1 s timeout: -32005 after about a second, a timeout event, and other calls go on."""
    token = setup.key("alice")
    async with agent(gw.url, token) as c:
        started = time.monotonic()
        with pytest.raises(MCPError) as hung:
            await c.call_tool("demo__sleep", {"seconds": 30})
        assert hung.value.code == -32005 and "did not answer within 1 s" in hung.value.message
        assert time.monotonic() - started < 5
    assert _event(served, "sleep", "timeout")["error_type"] == "upstream_timeout"
    await _still_serves(gw, token)


@pytest.mark.parametrize("tool", ["not_json", "bad_result"])
async def test_upstream_garbage(setup: Setup, gw: GatewayProc, served: Served, tool: str) -> None:
    """A line that is not JSON-RPC, or a result that is not a CallToolResult: the agent gets an
    error (not a hang beyond the tool timeout), the event is recorded, the gateway serves on."""
    token = setup.key("alice")
    async with agent(gw.url, token) as c:
        with pytest.raises(MCPError) as bad:
            await c.call_tool(f"junk__{tool}", {})
    assert bad.value.code == -32004
    assert ("not JSON-RPC" if tool == "not_json" else "not valid MCP") in bad.value.message
    assert _event(served, tool, "error")["error_type"] == "upstream_failed"
    await _still_serves(gw, token)


async def test_http_upstream_disappears(setup: Setup, gw: GatewayProc,
                                        http_upstream: tuple[int, subprocess.Popen[bytes]]) -> None:
    """A Streamable HTTP upstream answers, then is gone: -32004 naming it, and the rest goes on."""
    token = setup.key("alice")
    async with agent(gw.url, token) as c:
        assert _text(await c.call_tool("remote__echo", {"text": "over http"})) == "over http"
    http_upstream[1].terminate()
    http_upstream[1].wait(timeout=10)
    async with agent(gw.url, token) as c:
        with pytest.raises(MCPError) as gone:
            await c.call_tool("remote__echo", {"text": "anyone?"})
    assert gone.value.code in (-32004, -32005) and "remote" in gone.value.message
    await _still_serves(gw, token)


async def test_oversized_arguments(setup: Setup, gw: GatewayProc, served: Served) -> None:
    """Arguments above gateway.max_argument_bytes: -32602 naming the limit; nothing forwarded."""
    token = setup.key("alice")
    async with agent(gw.url, token) as c:
        with pytest.raises(MCPError) as big:
            await c.call_tool("demo__lookup_customer", {"email": "x" * 1_100_000})
    assert big.value.code == -32602 and "max_argument_bytes" in big.value.message
    event = _event(served, "lookup_customer", "denied")
    assert event["error_type"] == "arguments_too_large" and event["payload_size"] < 1000
    await _still_serves(gw, token)


async def test_malformed_json_rpc_and_unknown_methods(setup: Setup, gw: GatewayProc) -> None:
    """A body that is not JSON-RPC gets a JSON-RPC parse error; a method the gateway does not offer
    (logging/setLevel) gets "method not found"; an unknown tool name is refused; the gateway serves on."""
    token = setup.key("alice")
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream",
               "Content-Type": "application/json"}
    async with httpx.AsyncClient(timeout=10) as http:
        r = await http.post(gw.url + "/mcp", content=b"{not json", headers=headers)
    assert r.status_code == 400 and r.json()["error"]["code"] == -32700
    async with agent(gw.url, token) as c:
        with pytest.raises(MCPError) as unknown:
            raw: Any = TypeAdapter(dict[str, Any])
            await c.session.send_request(types.SetLevelRequest(params=types.SetLevelRequestParams(level="debug")), raw)
        assert unknown.value.code == -32601
        with pytest.raises(MCPError) as no_tool:
            await c.call_tool("no_such_tool", {})
        assert no_tool.value.code == -32001 and "SERVER__TOOL" in no_tool.value.message
    await _still_serves(gw, token)


async def test_a_cancelled_call_is_recorded(setup: Setup, gw: GatewayProc, served: Served) -> None:
    """The agent gives up on a slow call: its cancellation reaches the gateway, the forwarded call
    is recorded as cancelled, and the session serves the next call."""
    token = setup.key("alice")
    async with agent(gw.url, token) as c:
        assert _text(await c.call_tool("demo__echo", {"text": "warm"})) == "warm"  # the upstream is connected
        with pytest.raises(TimeoutError):  # given up once forwarded (the gate itself takes ms, more under load)
            await asyncio.wait_for(c.call_tool("demo__sleep", {"seconds": 0.9}), 0.5)
        assert _text(await c.call_tool("demo__echo", {"text": "next"})) == "next"
    event = wait_events(served, lambda e: e["type"] == "tool_call" and e["tool_name"] == "sleep"
                        and e.get("error_type") == "cancelled", 1)
    assert event and event[0]["status"] == "error"
