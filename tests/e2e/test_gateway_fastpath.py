"""The lean paths: a handshake-era ``tools/call`` is served without the mcp SDK's session machinery
on the agents' side and sent without it to a Streamable HTTP upstream, with the answers the SDK
would give; what the lean paths do not take still gets the SDK's own answers."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.support.gateway import EXAMPLE_SERVER, Setup, agent, wait_events, write_setup
from tests.support.serve import Served, free_port, start_serve

PORTS = {"json": free_port(), "sse": free_port()}
HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def _start_upstream(port: int, *, sse: bool) -> subprocess.Popen[bytes]:
    args = [sys.executable, str(EXAMPLE_SERVER), "--http", str(port), *([] if sse else ["--json"])]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"the example server did not listen on {port}")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    s = start_serve(tmp_path_factory.mktemp("fast-ledger") / "data")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def upstreams() -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    """The example server answering JSON and one answering SSE streams (a test may replace one)."""
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name in ("json", "sse"):
            procs[name] = _start_upstream(PORTS[name], sse=name == "sse")
        yield procs
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=10)


@pytest.fixture(scope="module")
def ports(upstreams: dict[str, subprocess.Popen[bytes]]) -> dict[str, int]:
    return PORTS


@pytest.fixture(scope="module")
def setup(served: Served, ports: dict[str, int], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    extra = "".join(f"""
[servers.{name}]
url = "http://127.0.0.1:{port}/mcp"
tier_default = "read"
[servers.{name}.tools.add]
[servers.{name}.tools.echo]
""" for name, port in ports.items())
    s = write_setup(tmp_path_factory.mktemp("fast"), served, extra=extra, alice_extra=', "json/*", "sse/*"')
    s.start()
    yield s
    s.stop_all()


def _lean(setup: Setup) -> dict[str, float]:
    text = httpx.get(setup.gateways[0].url + "/metrics", timeout=10).text
    return {m[0]: float(m[1]) for m in re.findall(r'sealtrail_gateway_lean_calls\{side="(\w+)"\} (\S+)', text)}


def _dump(result: Any) -> dict[str, Any]:
    dumped: dict[str, Any] = result.model_dump(by_alias=True, exclude_none=True, mode="json")
    return dumped


async def test_lean_calls_answer_as_the_upstream_does(setup: Setup, served: Served, ports: dict[str, int]) -> None:
    """Calls to an upstream answering JSON go through both lean paths, calls to one answering SSE
    streams through the agent's lean path and the SDK's client (an SSE answer may carry requests to
    the client); the agent gets exactly the result a direct call to the upstream gets; each call is
    recorded."""
    before = _lean(setup)
    got: dict[str, list[dict[str, Any]]] = {"json": [], "sse": []}
    async with agent(setup.gateways[0].url, setup.key("alice")) as c:
        for name in got:
            for i in range(5):
                got[name].append(_dump(await c.call_tool(f"{name}__add", {"a": i, "b": 10})))
            got[name].append(_dump(await c.call_tool(f"{name}__echo", {"text": "ünïcode ✓"})))
    after = _lean(setup)
    assert after["agent"] - before["agent"] == 12 and after["upstream"] - before["upstream"] == 6
    for name, port in ports.items():
        async with Client(streamable_http_client(f"http://127.0.0.1:{port}/mcp"), mode="legacy", cache=None) as d:
            direct = [_dump(await d.call_tool("add", {"a": i, "b": 10})) for i in range(5)]
            direct.append(_dump(await d.call_tool("echo", {"text": "ünïcode ✓"})))
        assert got[name] == direct
    calls = wait_events(served, lambda e: e["type"] == "tool_call" and e["server_id"] in ("json", "sse"), 12)
    assert len(calls) == 12 and all(e["status"] == "ok" for e in calls)


async def test_raw_json_rpc_on_the_lean_path(setup: Setup) -> None:
    """Over raw HTTP: an integer and a string id come back unchanged with the session header; a
    refusal is the gate's JSON-RPC error; what the lean path does not take (arguments not an object,
    an unknown session, a batch) gets the SDK's own answer."""
    url, token = setup.gateways[0].url + "/mcp", setup.key("alice")
    async with httpx.AsyncClient(headers={**HEADERS, "Authorization": f"Bearer {token}"}, timeout=10) as http:
        init = await http.post(url, json={"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}})
        session = init.headers["mcp-session-id"]
        h = {"Mcp-Session-Id": session, "Mcp-Protocol-Version": "2025-11-25"}
        assert (await http.post(url, headers=h, json={"jsonrpc": "2.0", "method": "notifications/initialized"})
                ).status_code == 202
        before = _lean(setup)["agent"]

        async def call(body: Any, headers: dict[str, str] = h) -> httpx.Response:
            return await http.post(url, headers=headers, json=body)

        r = await call({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                        "params": {"name": "json__add", "arguments": {"a": 2, "b": 3}}})
        assert r.status_code == 200 and r.headers["mcp-session-id"] == session
        assert r.headers["content-type"].startswith("application/json")
        body = r.json()
        assert (body["jsonrpc"], body["id"], body["result"]["structuredContent"]) == ("2.0", 7, {"result": 5})
        r = await call({"jsonrpc": "2.0", "id": "s-1", "method": "tools/call",
                        "params": {"name": "demo__delete_record", "arguments": {"record_id": "x"}}})
        assert r.json()["id"] == "s-1" and r.json()["error"]["code"] in (-32001, -32002)
        assert _lean(setup)["agent"] - before == 2

        r = await call({"jsonrpc": "2.0", "id": 8, "method": "tools/call",
                        "params": {"name": "json__add", "arguments": [1, 2]}})
        assert r.json()["id"] == 8 and "error" in r.json()  # the SDK's invalid-params answer
        r = await call({"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": "json__add"}},
                       {**h, "Mcp-Session-Id": "0" * 32})
        assert r.status_code == 404
        r = await call([{"jsonrpc": "2.0", "id": 10, "method": "tools/call", "params": {"name": "json__add"}}])
        assert r.status_code == 400
        assert _lean(setup)["agent"] - before == 2


async def test_an_upstream_that_restarts_gets_a_new_session(setup: Setup, ports: dict[str, int],
                                                            upstreams: dict[str, subprocess.Popen[bytes]]) -> None:
    """The JSON upstream restarts (it forgets the gateway's session and answers 404): the next call
    opens a new session and is answered, without an error reaching the agent."""
    async with agent(setup.gateways[0].url, setup.key("alice")) as c:
        assert (await c.call_tool("json__add", {"a": 1, "b": 1})).structured_content == {"result": 2}
        upstreams["json"].terminate()
        upstreams["json"].wait(timeout=10)
        upstreams["json"] = _start_upstream(ports["json"], sse=False)
        assert (await c.call_tool("json__add", {"a": 2, "b": 2})).structured_content == {"result": 4}
