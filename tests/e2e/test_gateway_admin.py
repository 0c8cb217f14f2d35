"""Operating the gateway: reload without dropping sessions, key rotation with overlap, readiness and
metrics, and a client of the stateless 2026-07-28 protocol era."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp.shared.exceptions import MCPError

from tests.support.gateway import Setup, agent, wait_events, write_setup
from tests.support.serve import Served, cli, start_serve


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    s = start_serve(tmp_path_factory.mktemp("gwa-ledger") / "data")
    yield s
    s.stop()


@pytest.fixture
def setup(served: Served, tmp_path: Path) -> Iterator[Setup]:
    s = write_setup(tmp_path, served)
    s.start()
    yield s
    s.stop_all()


def _get(url: str) -> httpx.Response:
    return httpx.get(url, timeout=10)


async def test_reload_applies_a_new_policy_without_dropping_sessions(setup: Setup, served: Served) -> None:
    """bob's open session: add is refused; the file gains demo/add for bob and `gateway reload`
    (SIGHUP) applies it to the same session; the calls record the new policy version; a broken file
    is refused by the command and by SIGHUP, and the running policy stays."""
    gw = setup.gateways[0]
    async with agent(gw.url, setup.key("bob")) as c:
        with pytest.raises(MCPError):
            await c.call_tool("demo__add", {"a": 1, "b": 1})
        text = setup.config.read_text()
        setup.config.write_text(text.replace('allow = ["demo/echo"]', 'allow = ["demo/echo", "demo/add"]'))
        done = cli("gateway", "reload", "--config", str(setup.config))
        assert done.returncode == 0 and "1 gateway" in done.stdout, done.stderr
        for _ in range(50):
            try:
                result = await c.call_tool("demo__add", {"a": 1, "b": 1})
                break
            except MCPError:
                await asyncio.sleep(0.1)
        else:
            pytest.fail("the reloaded policy was not applied")
        assert result.structured_content == {"result": 2}
        setup.config.write_text("policy_id = [broken")
        assert cli("gateway", "reload", "--config", str(setup.config)).returncode == 2
        gw.proc.send_signal(signal.SIGHUP)  # the process refuses it too and keeps serving
        await asyncio.sleep(0.5)
        assert (await c.call_tool("demo__add", {"a": 2, "b": 2})).structured_content == {"result": 4}
    versions = {e["policy_version"] for e in wait_events(
        served, lambda e: e["type"] == "tool_call" and e["agent_id"] == "bob" and e["tool_name"] == "add", 3)}
    assert len(versions) == 2
    metrics = _get(gw.url + "/metrics").text
    assert 'sealtrail_gateway_reloads_total{outcome="applied"} 1.0' in metrics
    assert 'sealtrail_gateway_reloads_total{outcome="refused"} 1.0' in metrics


async def test_key_rotation_overlaps(setup: Setup) -> None:
    """A rotated key keeps working for the overlap, then stops; the new one works throughout."""
    gw = setup.gateways[0]
    first = json.loads(cli("gateway", "key", "create", "--config", str(setup.config), "--agent", "bob",
                           "--json").stdout)
    rotated = cli("gateway", "key", "rotate", first["key_id"], "--overlap", "10", "--config", str(setup.config),
                  "--json")
    ended = time.monotonic()  # the overlap ends at most 10 s after the command committed, i.e. before this
    assert rotated.returncode == 0, rotated.stderr
    second: dict[str, Any] = json.loads(rotated.stdout)
    assert second["agent"] == "bob" and second["replaces"] == first["key_id"] and second["token"] != first["token"]
    for token in (first["token"], second["token"]):
        async with agent(gw.url, token) as c:
            await c.call_tool("demo__echo", {"text": "x"})
    await asyncio.sleep(max(0.0, ended + 10 + 2.5 - time.monotonic()))  # past the overlap and the key cache
    with pytest.raises(Exception):  # noqa: B017 - the SDK raises its own error for the 401
        async with agent(gw.url, first["token"]):
            pass
    async with agent(gw.url, second["token"]) as c:
        await c.call_tool("demo__echo", {"text": "y"})


async def test_readiness_and_metrics(setup: Setup) -> None:
    """/readyz is ready with the ledger, state and upstream answering; /metrics counts calls by
    decision and status, and shows held approvals and the spool depth."""
    gw = setup.gateways[0]
    ready = _get(gw.url + "/readyz")
    assert ready.status_code == 200 and ready.json()["problems"] == []
    async with agent(gw.url, setup.key("alice")) as c:
        await c.call_tool("demo__echo", {"text": "m"})
    metrics = _get(gw.url + "/metrics").text
    assert 'sealtrail_gateway_calls_total{decision="allow",server="demo",status="ok"} 1.0' in metrics
    for name in ("sealtrail_gateway_held_approvals", "sealtrail_gateway_spool_depth", "sealtrail_gateway_ledger_up",
                 "sealtrail_gateway_call_seconds_bucket"):
        assert name in metrics


async def test_a_2026_era_client(setup: Setup, served: Served) -> None:
    """A client pinned to the stateless 2026-07-28 protocol lists and calls through the gateway."""
    gw = setup.gateways[0]
    async with agent(gw.url, setup.key("alice"), mode="auto") as c:
        assert c.protocol_version == "2026-07-28"
        assert "demo__echo" in {t.name for t in (await c.list_tools()).tools}
        assert (await c.call_tool("demo__add", {"a": 20, "b": 6})).structured_content == {"result": 26}
    wait_events(served, lambda e: e["type"] == "tool_call" and e["tool_name"] == "add" and e["agent_id"] == "alice", 1)
