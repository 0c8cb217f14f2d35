"""What the gateway records: N calls give exactly N tool_call events with decision and policy
version, the log verifies, the payload is what crossed the wire, a planted marker leaks nowhere,
and while the ledger is down destructive calls fail closed, others fail open, and every event is
delivered once it returns."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp.shared.exceptions import MCPError

from tests.support.gateway import Setup, agent, ledger_events, wait_events, write_setup
from tests.support.serve import Served, cli, create_key, start_serve, wait_for_checkpoint

MARKER = "PLANTED-7f3a9c-MARKER"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    s = start_serve(tmp_path / "data")
    yield s
    s.stop()


@pytest.fixture
def setup(served: Served, tmp_path: Path) -> Iterator[Setup]:
    s = write_setup(tmp_path / "gw", served)
    s.start()
    yield s
    s.stop_all()


def _get(url: str, **kwargs: Any) -> httpx.Response:
    return httpx.get(url, timeout=10, **kwargs)


async def test_n_calls_give_n_events_and_the_log_verifies(setup: Setup, served: Served) -> None:
    """20 calls (allowed, observed, denied, rate limited) through the gateway are exactly 20
    tool_call events, each with its decision and the policy version; `sealtrail verify` passes; and
    a revealed payload holds the arguments and the result exactly as the client sent and received."""
    gw = setup.gateways[0]
    sent: list[tuple[str, dict[str, Any]]] = []
    received: dict[str, Any] = {}
    async with agent(gw.url, setup.key("alice")) as alice, agent(gw.url, setup.key("bob")) as bob:
        for i in range(10):
            args = {"email": f"user{i}@example.com"}
            result = await alice.call_tool("demo__lookup_customer", args)
            received[args["email"]] = result.model_dump(by_alias=True, exclude_none=True, mode="json")
            sent.append(("alice", args))
        for i in range(5):
            with pytest.raises(MCPError):
                await bob.call_tool("demo__add", {"a": i, "b": i})
            sent.append(("bob", {}))
        for i in range(5):  # 2/min: 2 observed, 3 rate limited
            try:
                await alice.call_tool("demo__update_note", {"key": f"k{i}", "text": "t"})
            except MCPError as e:
                assert e.code == -32003
            sent.append(("alice", {}))
    calls = wait_events(served, lambda e: e["type"] == "tool_call", len(sent))
    assert len(calls) == len(sent) == 20
    version = calls[0]["policy_version"]
    assert all(c["policy_id"] == "test-policy" and c["policy_version"] == version and c["decision"] for c in calls)
    by = sorted((c["tool_name"], c["decision"], c["status"]) for c in calls)
    assert by.count(("lookup_customer", "allow", "ok")) == 10 and by.count(("add", "deny", "denied")) == 5
    assert by.count(("update_note", "observe", "ok")) == 2 and by.count(("update_note", "deny", "denied")) == 3
    assert sum(c.get("error_type") == "rate_limited" for c in calls) == 3

    log_size = len(ledger_events(served))
    auditor = create_key(served, "auditor")
    wait_for_checkpoint(served.url, auditor, "default", log_size)
    done = cli("verify", "--url", served.url, "--log", "default", "--token", auditor)
    assert done.returncode == 0, done.stderr + done.stdout

    investigator = create_key(served, "investigator")
    target = next(c for c in calls if c["tool_name"] == "lookup_customer")
    r = _get(f"{served.url}/v1/calls/{target['event_id']}", params={"purpose": "incident.review"},
             headers={"Authorization": f"Bearer {investigator}"})
    assert r.status_code == 200, r.text
    payload = r.json()["payload"]
    assert payload["result"]["structuredContent"] == received[payload["arguments"]["email"]]["structuredContent"]
    assert payload["result"]["content"] == received[payload["arguments"]["email"]]["content"]


async def test_a_planted_marker_leaks_nowhere(setup: Setup, served: Served) -> None:
    """A marker in arguments and results appears in no log line of the gateway or the ledger, in
    no metric of either, and in no ledger entry header; only the sealed payload holds it."""
    gw = setup.gateways[0]
    token = setup.key("alice")
    async with agent(gw.url, token) as c:
        await c.call_tool("demo__echo", {"text": f"secret {MARKER}"})
        await c.call_tool("demo__lookup_customer", {"email": f"{MARKER}@example.com"})
        with pytest.raises(MCPError):
            await c.call_tool("demo__delete_record", {"record_id": MARKER})  # held: pending
        with pytest.raises(MCPError):
            await c.call_tool("demo__no_such", {"x": MARKER})
    wait_events(served, lambda e: e["type"] == "tool_call", 4)
    await asyncio.sleep(1.5)
    scanned = {
        "gateway log": gw.stderr(), "serve stdout": served.stdout(), "serve stderr": served.stderr(),
        "gateway metrics": _get(gw.url + "/metrics").text,
        "ledger headers": json.dumps(ledger_events(served)),
        "approvals list": cli("gateway", "approvals", "list", "--config", str(setup.config), "--json").stdout,
    }
    for where, text in scanned.items():
        assert text and MARKER not in text, f"the marker is in the {where}"
    secret = token.split("_", 2)[2]  # sgk_<key id>_<secret>; the secret may itself hold "_"
    assert secret and secret not in gw.stderr() + scanned["gateway metrics"]


async def test_fail_closed_and_open_while_the_ledger_is_down(setup: Setup, served: Served) -> None:
    """Ledger stopped: a destructive call is refused (-32006), a read call goes through; after the
    ledger returns, the events of both (spooled on disk) are delivered, none lost."""
    gw = setup.gateways[0]
    token = setup.key("alice")
    served.stop()
    for _ in range(50):
        ready = _get(gw.url + "/readyz")
        if ready.status_code == 503 and "ledger unreachable" in ready.json()["problems"]:
            break
        await asyncio.sleep(0.2)
    else:
        pytest.fail("the gateway did not notice the ledger going down")
    async with agent(gw.url, token) as c:
        with pytest.raises(MCPError) as closed:
            await c.call_tool("demo__delete_record", {"record_id": "while-down"})
        assert closed.value.code == -32006 and "ledger" in closed.value.message
        for i in range(3):
            assert (await c.call_tool("demo__add", {"a": i, "b": 1})).structured_content == {"result": i + 1}
    await asyncio.sleep(1.0)
    back = start_serve(served.data_dir, port=served.port)
    try:
        found = wait_events(back, lambda e: e["type"] == "tool_call", 4, timeout=60)
        got = sorted((e["tool_name"], e["status"], e.get("error_type", "")) for e in found)
        assert got == [("add", "ok", ""), ("add", "ok", ""), ("add", "ok", ""),
                       ("delete_record", "denied", "ledger_unreachable")]
    finally:
        back.stop()


async def test_a_stopped_gateway_keeps_its_spooled_events(setup: Setup, served: Served) -> None:
    """Ledger down, calls answered, the gateway stopped: its events are in the on-disk spool; the next
    gateway process on the same address delivers them once the ledger is back."""
    gw = setup.gateways[0]
    token = setup.key("alice")
    served.stop()
    async with agent(gw.url, token) as c:
        for i in range(3):
            await c.call_tool("demo__echo", {"text": f"spooled {i}"})
    assert gw.stop() == 0
    spool = setup.dir / "spool" / f"http-{gw.port}"
    assert any(p.stat().st_size > 0 for p in spool.rglob("*") if p.is_file())
    setup.start()
    back = start_serve(served.data_dir, port=served.port)
    try:
        found = wait_events(back, lambda e: e["type"] == "tool_call" and e["tool_name"] == "echo", 3, timeout=60)
        assert len(found) == 3 and len({e["event_id"] for e in found}) == 3
    finally:
        back.stop()
