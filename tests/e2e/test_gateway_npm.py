"""The gateway in front of the reference MCP servers from npm (pinned 2026.8.31):
``@modelcontextprotocol/server-everything`` over stdio and over Streamable HTTP, and
``@modelcontextprotocol/server-filesystem`` whose write, edit and move tools are a destructive tier."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError
from mcp_types import ListToolsRequest
from pydantic import TypeAdapter

from sealtrail.core.canonical import canonical_json
from tests.support.gateway import GatewayProc, Setup, agent, ledger_events, wait_events, write_setup
from tests.support.npm_servers import mcp_servers
from tests.support.serve import Served, cli, free_port, start_serve

NPM_CONFIG = """
[servers.everything]
command = ["node", "{modules}/server-everything/dist/index.js", "stdio"]
tier_default = "read"
[servers.everything.tools.echo]
[servers.everything.tools.get-sum]
[servers.everything.tools.trigger-long-running-operation]

[servers.everything_http]
url = "http://127.0.0.1:{http_port}/mcp"
tier_default = "read"
[servers.everything_http.tools.echo]

[servers.fs]
command = ["node", "{modules}/server-filesystem/dist/index.js", "{root}"]
tier_default = "read"
[servers.fs.tools.read_text_file]
[servers.fs.tools.list_directory]
[servers.fs.tools.write_file]
tier = "destructive"
[servers.fs.tools.edit_file]
tier = "destructive"
[servers.fs.tools.move_file]
tier = "destructive"

[agents.npm-agent]
allow = ["everything/*", "everything_http/*", "fs/*"]
"""


@pytest.fixture(scope="module")
def modules() -> Path:
    return mcp_servers()


@pytest.fixture(scope="module")
def everything_http(modules: Path) -> Iterator[int]:
    port = free_port()
    proc = subprocess.Popen(["node", str(modules / "server-everything/dist/index.js"), "streamableHttp"],
                            env={**os.environ, "PORT": str(port)}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.1)
    yield port
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    s = start_serve(tmp_path_factory.mktemp("gwn-ledger") / "data")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    r = tmp_path_factory.mktemp("fsroot").resolve()
    (r / "notes.txt").write_text("first line\n")
    return r


@pytest.fixture(scope="module")
def setup(served: Served, modules: Path, everything_http: int, root: Path,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    extra = NPM_CONFIG.format(modules=modules, http_port=everything_http, root=root)
    s = write_setup(tmp_path_factory.mktemp("gwn"), served, extra=extra)
    s.start()
    yield s
    s.stop_all()


@pytest.fixture(scope="module")
def gw(setup: Setup) -> GatewayProc:
    return setup.gateways[0]


def _text(result: Any) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


async def test_server_everything_over_stdio_and_http(setup: Setup, gw: GatewayProc, served: Served) -> None:
    """Declared tools of server-everything are listed and answer over both transports; its other
    tools are undecided: not listed, refused."""
    async with agent(gw.url, setup.key("npm-agent")) as c:
        names = {t.name for t in (await c.list_tools()).tools}
        assert {"everything__echo", "everything__get-sum", "everything_http__echo"} <= names
        assert not any(n.startswith("everything__get-env") for n in names)
        assert "hello" in _text(await c.call_tool("everything__echo", {"message": "hello"}))
        assert "5" in _text(await c.call_tool("everything__get-sum", {"a": 2, "b": 3}))
        assert "over http" in _text(await c.call_tool("everything_http__echo", {"message": "over http"}))
        with pytest.raises(MCPError) as refused:
            await c.call_tool("everything__get-env", {})
    assert refused.value.code == -32001
    found = wait_events(served, lambda e: e["type"] == "tool_call" and e["server_id"].startswith("everything"), 4)
    assert {(e["server_id"], e["tool_name"], e["status"]) for e in found} >= {
        ("everything", "echo", "ok"), ("everything", "get-sum", "ok"), ("everything_http", "echo", "ok"),
        ("everything", "get-env", "denied")}


async def test_filesystem_destructive_tools_are_held(setup: Setup, gw: GatewayProc, root: Path) -> None:
    """read_text_file passes; write_file is held until approved, then writes; a rejected move_file
    never reaches the server (the file stays where it was)."""
    async with agent(gw.url, setup.key("npm-agent")) as c:
        assert "first line" in _text(await c.call_tool("fs__read_text_file", {"path": str(root / "notes.txt")}))
        args = {"path": str(root / "new.txt"), "content": "written through the gateway"}
        with pytest.raises(MCPError) as held:
            await c.call_tool("fs__write_file", args)
        assert held.value.code == -32002 and not (root / "new.txt").exists()
        approve = cli("gateway", "approvals", "approve", held.value.data["approval_id"], "--by", "carol",
                      "--config", str(setup.config))
        assert approve.returncode == 0, approve.stderr
        await c.call_tool("fs__write_file", args)
        assert (root / "new.txt").read_text() == "written through the gateway"

        move = {"source": str(root / "notes.txt"), "destination": str(root / "moved.txt")}
        with pytest.raises(MCPError) as held_move:
            await c.call_tool("fs__move_file", move)
        reject = cli("gateway", "approvals", "reject", held_move.value.data["approval_id"], "--by", "carol",
                     "--reason", "keep it", "--config", str(setup.config))
        assert reject.returncode == 0, reject.stderr
        with pytest.raises(MCPError) as refused:
            await c.call_tool("fs__move_file", move)
        assert refused.value.code == -32001
    assert (root / "notes.txt").exists() and not (root / "moved.txt").exists()
    listed = json.loads(cli("gateway", "approvals", "list", "--config", str(setup.config), "--json").stdout)
    assert {a["tool"] for a in listed["approvals"]} >= {"write_file", "move_file"}


async def test_progress_is_relayed_with_sse_answers(setup: Setup, tmp_path: Path) -> None:
    """With ``json_response = false`` the agent receives the upstream's progress notifications for its
    call, under its own progress token."""
    config = tmp_path / "sse.toml"
    port = free_port()
    text = setup.config.read_text().replace("[gateway]\n", "[gateway]\njson_response = false\n")
    config.write_text(text.replace(f'listen = "127.0.0.1:{setup.gateways[0].port}"', f'listen = "127.0.0.1:{port}"')
                      .replace('token_file = "ledger.token"', f'token_file = "{setup.dir / "ledger.token"}"')
                      .replace('database = "state.db"', f'database = "{setup.dir / "state.db"}"'))
    sse = setup.start(config=config)
    got: list[tuple[float, float | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        got.append((progress, total))

    try:
        async with agent(sse.url, setup.key("npm-agent")) as c:
            result = await c.call_tool("everything__trigger-long-running-operation", {"duration": 1, "steps": 4},
                                       progress_callback=on_progress)
        assert "completed" in _text(result)
        assert got == [(1.0, 4.0), (2.0, 4.0), (3.0, 4.0), (4.0, 4.0)]
    finally:
        sse.stop()


async def test_filesystem_listing_is_pinned_and_undeclared_tools_wait(setup: Setup, gw: GatewayProc, served: Served,
                                                                      modules: Path, root: Path) -> None:
    """server-filesystem's whole listing is pinned by the hash of each definition as a direct client
    receives it; its undeclared tools (create_directory, directory_tree, ...) wait in `tools pending`
    with the tier their annotations suggest, are hidden and refused, and never run upstream."""
    params = StdioServerParameters(command="node", args=[str(modules / "server-filesystem/dist/index.js"), str(root)])
    async with Client(params, mode="legacy", cache=None) as direct:
        listed = await direct.session.send_request(ListToolsRequest(params=None), TypeAdapter(dict[str, Any]))
    expected = {t["name"]: "sha256:" + hashlib.sha256(canonical_json(t)).hexdigest() for t in listed["tools"]}
    async with agent(gw.url, setup.key("npm-agent")) as c:
        shown = {t.name for t in (await c.list_tools()).tools if t.name.startswith("fs__")}
        assert shown == {"fs__read_text_file", "fs__list_directory", "fs__write_file", "fs__edit_file",
                         "fs__move_file"}
        with pytest.raises(MCPError) as refused:
            await c.call_tool("fs__create_directory", {"path": str(root / "made-by-agent")})
    assert refused.value.code == -32001 and not (root / "made-by-agent").exists()
    snaps = [e for e in ledger_events(served, type_="tool_list") if e["server_id"] == "fs"]
    assert snaps and {t["name"]: t["def_hash"] for t in snaps[-1]["tools"]} == expected
    pending = json.loads(cli("gateway", "tools", "pending", "--config", str(setup.config), "--json").stdout)
    fs = {t["tool"]: t for t in pending["tools"] if t["server"] == "fs"}
    assert set(fs) == set(expected) - {"read_text_file", "list_directory", "write_file", "edit_file", "move_file"}
    assert fs["create_directory"]["suggested_tier"] == "write"
    assert fs["directory_tree"]["suggested_tier"] == "read"
    calls = wait_events(served, lambda e: e["type"] == "tool_call" and e["tool_name"] == "create_directory", 1)
    assert calls[0]["status"] == "denied" and calls[0]["server_id"] == "fs"
