"""Health checks against a real upstream: an unreachable server is reported as unreachable (not as a
rejected credential), marked unhealthy after the configured failures so calls are refused at once,
and recovers by itself when it is back; every check is a health_check event and the log verifies."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest
from mcp.shared.exceptions import MCPError

from tests.support.authserver import AuthServer
from tests.support.gateway import Setup, agent, wait_events
from tests.support.gwops import auth_upstream, cli_in, docs_setup, operator_key, verify_ledger
from tests.support.serve import Served, cli, start_serve

TOKEN = "tok-health-3c4d5e6f7a"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    s = start_serve(tmp_path_factory.mktemp("gwh-ledger") / "data")
    yield s
    s.stop()


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[AuthServer]:
    server = auth_upstream(tmp_path, TOKEN)
    yield server
    server.stop()


@pytest.fixture
def setup(served: Served, upstream: AuthServer, tmp_path: Path) -> Iterator[Setup]:
    s = docs_setup(tmp_path / "gw", served, upstream, interval=1, after=2)
    done = cli_in("gateway", "credential", "set", "docs", "--bearer", "--config", str(s.config), secret=TOKEN)
    assert done.returncode == 0, done.stderr
    yield s
    s.stop_all()


async def _call(url: str, token: str) -> tuple[int, str, float]:
    """(JSON-RPC error code or 0, message, seconds the call took)."""
    async with agent(url, token) as c:
        started = time.monotonic()
        try:
            await c.call_tool("docs__word_count", {"text": "one two three"})
        except MCPError as e:
            return e.code, e.message, time.monotonic() - started
    return 0, "ok", time.monotonic() - started


async def _until(predicate: Callable[[], Awaitable[bool]], what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not await predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


async def test_an_unreachable_server_turns_unhealthy_and_recovers(setup: Setup, served: Served,
                                                                  upstream: AuthServer) -> None:
    """Upstream down: `gateway health` says unreachable; after 2 failed scheduled checks calls are
    refused with -32008 in well under the server's timeout; the upstream back on its port: the next
    passing check lets calls through again, without a restart of the gateway."""
    gw = setup.start()
    alice = setup.key("alice")
    assert (await _call(gw.url, alice))[0] == 0
    upstream.stop()
    done = cli("gateway", "health", "docs", "--config", str(setup.config), "--json")
    assert done.returncode == 1
    check = json.loads(done.stdout)["checks"][0]
    assert check["status"] == "unreachable" and not check["ok"]

    async def unhealthy() -> bool:
        return (await _call(gw.url, alice))[0] == -32008
    await _until(unhealthy, "the server to be marked unhealthy")
    code, message, took = await _call(gw.url, alice)
    assert code == -32008 and "unreachable" in message and took < 5.0  # not the 10 s check or 30 s call timeout

    op = operator_key(setup)
    async with httpx.AsyncClient(base_url=gw.url, timeout=30, headers={"Authorization": f"Bearer {op}"}) as http:
        listed = (await http.get("/v1/health")).json()["servers"]
        assert [(h["server"], h["state"]) for h in listed] == [("docs", "unhealthy")]
        assert (await http.post("/v1/health/docs")).status_code == 503

        upstream.start()

        async def recovered() -> bool:
            return (await _call(gw.url, alice))[0] == 0
        await _until(recovered, "calls to pass after the upstream came back")
        now = await http.post("/v1/health/docs")
        assert now.status_code == 200 and now.json()["state"] == "healthy" and now.json()["tools"] == 2

    deadline = time.monotonic() + 30
    while True:  # the passing check's event reaches the ledger after its answer
        checks = wait_events(served, lambda e: e["type"] == "health_check" and e["server_id"] == "docs", 5)
        statuses = [(e["status"], e.get("error_type")) for e in checks]
        if statuses[-1:] == [("healthy", None)] or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert ("degraded", "unreachable") in statuses and ("unhealthy", "unreachable") in statuses
    assert statuses[-1] == ("healthy", None)
    assert all(e.get("error_type") != "credential_rejected" for e in checks)
    refused = wait_events(served, lambda e: e["type"] == "tool_call" and e.get("error_type") == "server_unhealthy", 2)
    assert all(e["status"] == "denied" and e["decision"] == "deny" for e in refused)
    verify_ledger(served)


async def test_health_check_of_every_server_and_of_an_unknown_one(setup: Setup) -> None:
    """`gateway health` without a server checks all (the stdio demo server too); an unknown server
    is a clear error."""
    done = cli("gateway", "health", "--config", str(setup.config), "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    checks = {c["server"]: c for c in json.loads(done.stdout)["checks"]}
    assert checks["docs"]["ok"] and checks["docs"]["credential_version"] == 1
    assert checks["demo"]["ok"] and checks["demo"]["tools"] >= 5 and checks["demo"]["credential_version"] is None
    bad = cli("gateway", "health", "nope", "--config", str(setup.config))
    assert bad.returncode == 1 and "no server 'nope'" in bad.stderr
