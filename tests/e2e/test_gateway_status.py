"""Server status: a server disabled on the command line is refused by every gateway process sharing
the state database (-32007 with the operator's reason, recorded), keeps its credential and history,
and is enabled again over the operator API; each change is a server_status event and the log
verifies."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from mcp.shared.exceptions import MCPError

from tests.support.authserver import AuthServer
from tests.support.gateway import Setup, agent, wait_events
from tests.support.gwops import auth_upstream, cli_in, docs_setup, operator_key, verify_ledger
from tests.support.serve import Served, cli, free_port, start_serve

TOKEN = "tok-status-7a8b9c0d1e"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    s = start_serve(tmp_path_factory.mktemp("gws-ledger") / "data")
    yield s
    s.stop()


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[AuthServer]:
    server = auth_upstream(tmp_path, TOKEN)
    yield server
    server.stop()


@pytest.fixture
def setup(served: Served, upstream: AuthServer, tmp_path: Path) -> Iterator[Setup]:
    s = docs_setup(tmp_path / "gw", served, upstream, interval=0)
    done = cli_in("gateway", "credential", "set", "docs", "--bearer", "--config", str(s.config), secret=TOKEN)
    assert done.returncode == 0, done.stderr
    yield s
    s.stop_all()


async def _code(url: str, token: str, tool: str = "docs__search") -> tuple[int, str]:
    async with agent(url, token) as c:
        try:
            await c.call_tool(tool, {"query": "x"} if tool == "docs__search" else {"text": "hi"})
        except MCPError as e:
            return e.code, e.message
    return 0, "ok"


async def _settled(url: str, token: str, code: int, seconds: float = 10) -> tuple[int, str]:
    """The call's outcome once it is ``code`` (gateways read the status at most every 2 s)."""
    deadline = time.monotonic() + seconds
    while True:
        got = await _code(url, token)
        if got[0] == code or time.monotonic() > deadline:
            return got
        await asyncio.sleep(0.2)


async def test_disabled_server_refuses_calls_in_every_gateway_and_keeps_history(setup: Setup, served: Served) -> None:
    """Two gateways on one state database; `server disable` on the CLI: both refuse with -32007
    naming the reason, other servers still work; the credential is untouched; enabling over the
    API brings both back; history and ledger hold both changes."""
    one = setup.start()
    two = setup.start(config=_second_config(setup))
    alice = setup.key("alice")
    assert (await _code(one.url, alice))[0] == 0

    off = cli("gateway", "server", "disable", "docs", "--config", str(setup.config), "--reason",
              "upstream maintenance window", "--by", "carol")
    assert off.returncode == 0, off.stderr
    again = cli("gateway", "server", "disable", "docs", "--config", str(setup.config), "--reason", "again")
    assert again.returncode == 1 and "already disabled" in again.stderr
    for gw in (one, two):
        code, message = await _settled(gw.url, alice, -32007)
        assert code == -32007 and "upstream maintenance window" in message
    async with agent(one.url, alice) as c:  # another server is not affected
        assert (await c.call_tool("demo__echo", {"text": "still here"})).content

    listed = json.loads(cli("gateway", "server", "list", "--config", str(setup.config), "--json").stdout)["servers"]
    docs = next(s for s in listed if s["server"] == "docs")
    assert (docs["state"], docs["reason"], docs["credential_version"]) == ("inactive", "upstream maintenance window", 1)

    op = operator_key(setup)
    async with httpx.AsyncClient(base_url=one.url, timeout=30, headers={"Authorization": f"Bearer {op}"}) as http:
        no_reason = await http.post("/v1/servers/docs/enable", json={})
        assert no_reason.status_code == 400
        on = await http.post("/v1/servers/docs/enable", json={"reason": "maintenance over"})
        assert on.status_code == 200 and on.json()["state"] == "active" and on.json()["by"] == "olga"
        history = (await http.get("/v1/servers/docs/history")).json()["history"]
    assert [(h["state"], h["by"], h["reason"]) for h in history] == [
        ("inactive", "carol", "upstream maintenance window"), ("active", "olga", "maintenance over")]
    for gw in (one, two):
        assert (await _settled(gw.url, alice, 0))[0] == 0

    shown = cli("gateway", "server", "history", "docs", "--config", str(setup.config))
    assert "inactive by carol: upstream maintenance window" in shown.stdout
    changes = wait_events(served, lambda e: e["type"] == "server_status" and e["server_id"] == "docs", 2)
    assert [e["state"] for e in changes] == ["inactive", "active"]
    assert all("reason" not in e and "payload_digest" in e for e in changes)  # the reason is sealed
    refused = wait_events(served, lambda e: e["type"] == "tool_call" and e.get("error_type") == "server_disabled", 2)
    assert {e["status"] for e in refused} == {"denied"}
    verify_ledger(served)


def _second_config(setup: Setup) -> Path:
    text = setup.config.read_text()
    port = text.split('listen = "127.0.0.1:')[1].split('"')[0]
    second = setup.dir / "gateway-two.toml"
    second.write_text(text.replace(f'listen = "127.0.0.1:{port}"', f'listen = "127.0.0.1:{free_port()}"'))
    return second

