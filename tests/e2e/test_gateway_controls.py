"""Each control of the gateway, end to end: a real ``mcp`` client, ``sealtrail gateway`` as a child
process, the example MCP server (on ``mcp``) as the upstream, and ``sealtrail serve`` as the ledger."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp.shared.exceptions import MCPError

from tests.support.gateway import GatewayProc, Setup, agent, stdio_agent, wait_events, write_setup
from tests.support.serve import Served, cli, start_serve


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    s = start_serve(tmp_path_factory.mktemp("gw-ledger") / "data")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def setup(served: Served, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    s = write_setup(tmp_path_factory.mktemp("gw"), served)
    s.start()
    yield s
    s.stop_all()


@pytest.fixture(scope="module")
def gw(setup: Setup) -> GatewayProc:
    return setup.gateways[0]


def _http(method: str, url: str, **kwargs: Any) -> httpx.Response:
    return httpx.request(method, url, timeout=10, **kwargs)


def _text(result: Any) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


async def _stats(gw: GatewayProc, token: str) -> dict[str, int]:
    async with agent(gw.url, token) as c:
        found: dict[str, int] = json.loads(_text(await c.call_tool("demo__stats", {})))
        return found


def _calls(served: Served, **match: str) -> list[dict[str, Any]]:
    return wait_events(served, lambda e: e["type"] == "tool_call" and all(e.get(k) == v for k, v in match.items()), 1)


async def test_anonymous_and_unknown_keys_get_401(setup: Setup, gw: GatewayProc) -> None:
    """No key, a malformed key, a well-formed unknown key, a revoked key and an approver key are all
    refused with 401 problem details before any MCP message is read."""
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}
    approver = json.loads(cli("gateway", "key", "create", "--config", str(setup.config), "--approver", "carol",
                              "--json").stdout)["token"]
    revoked = json.loads(cli("gateway", "key", "create", "--config", str(setup.config), "--agent", "bob",
                             "--json").stdout)
    assert cli("gateway", "key", "revoke", revoked["key_id"], "--config", str(setup.config)).returncode == 0
    await asyncio.sleep(2.5)  # past the key cache
    for token in (None, "nonsense", "sgk_0123456789abcdef_" + "A" * 43, revoked["token"], approver):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        headers["Accept"] = "application/json, text/event-stream"
        r = _http("POST", gw.url + "/mcp", json=init, headers=headers)
        assert r.status_code == 401, (token, r.text)
        assert r.headers["content-type"] == "application/problem+json" and "WWW-Authenticate" in r.headers
    with pytest.raises(Exception):  # the SDK client cannot even start a session  # noqa: B017
        async with agent(gw.url, None):
            pass


async def test_off_the_allow_list_is_refused_and_not_listed(setup: Setup, gw: GatewayProc, served: Served) -> None:
    """bob may call demo/echo only: tools/list shows just that, and a call to another tool is
    refused (JSON-RPC -32001), recorded as deny, and never reaches the upstream."""
    before = await _stats(gw, setup.key("alice"))
    async with agent(gw.url, setup.key("bob")) as c:
        assert [t.name for t in (await c.list_tools()).tools] == ["demo__echo"]
        assert _text(await c.call_tool("demo__echo", {"text": "hi"})) == "hi"
        with pytest.raises(MCPError) as refused:
            await c.call_tool("demo__update_note", {"key": "bob", "text": "sneaky"})
    assert refused.value.code == -32001 and "not allowed" in refused.value.message
    assert await _stats(gw, setup.key("alice")) == before  # the upstream never ran it
    event = _calls(served, agent_id="bob", tool_name="update_note")[0]
    assert (event["decision"], event["status"], event["error_type"]) == ("deny", "denied", "not_allowed")
    assert event["policy_id"] == "test-policy" and event["policy_version"].startswith("sha256:")
    echo = wait_events(served, lambda e: e["type"] == "tool_call" and e.get("agent_id") == "bob", 1)[0]
    listing = wait_events(served, lambda e: e["type"] == "tool_list" and e["server_id"] == "demo", 1)[0]
    assert "agent_id" not in listing  # the server's whole listing, not one agent's view of it
    pins = {t["name"]: t["def_hash"] for t in listing["tools"]}
    assert {"echo", "update_note"} <= set(pins) and echo["tool_def_hash"] == pins["echo"]


async def test_a_tool_added_upstream_is_not_inherited(setup: Setup, gw: GatewayProc, served: Served) -> None:
    """The upstream adds a tool at run time and announces it; ``demo/*`` does not cover it: it is
    not listed, and a call is refused as undecided and recorded."""
    changed = asyncio.Event()

    async def on_message(message: Any) -> None:
        if getattr(getattr(message, "root", message), "method", "") == "notifications/tools/list_changed":
            changed.set()

    async with agent(gw.url, setup.key("alice")) as c:
        c.session._message_handler = on_message  # watch for the relayed change
        before = {t.name for t in (await c.list_tools()).tools}
        assert "demo__grow" in before
        assert _text(await c.call_tool("demo__grow", {"name": "export_all"})) == "added export_all"
        await asyncio.wait_for(changed.wait(), 10)  # the upstream's list_changed reached this session
        after = {t.name for t in (await c.list_tools()).tools}
        assert "demo__export_all" not in after and after == before
        with pytest.raises(MCPError) as refused:
            await c.call_tool("demo__export_all", {"text": "everything"})
    assert refused.value.code == -32001 and "undecided tool" in refused.value.message
    event = _calls(served, agent_id="alice", tool_name="export_all")[0]
    assert (event["decision"], event["error_type"], event["tool_tier"]) == ("deny", "undecided_tool", "unknown")
    assert "offers tool 'export_all', which has no tier" in gw.stderr()  # reported to the operator


async def test_observe_is_forwarded_and_recorded(setup: Setup, gw: GatewayProc, served: Served) -> None:
    """update_note is in observe mode: the call completes and its event says observe."""
    async with agent(gw.url, setup.key("alice")) as c:
        assert "stored" in _text(await c.call_tool("demo__update_note", {"key": "k1", "text": "observed"}))
    event = _calls(served, agent_id="alice", tool_name="update_note", status="ok")[0]
    assert (event["decision"], event["tool_tier"]) == ("observe", "write")


async def _pending(gw: GatewayProc, token: str, record_id: str) -> str:
    async with agent(gw.url, token) as c:
        with pytest.raises(MCPError) as held:
            await c.call_tool("demo__delete_record", {"record_id": record_id})
    assert held.value.code == -32002 and "pending approval apr_" in held.value.message
    approval_id: str = held.value.data["approval_id"]
    return approval_id


async def test_step_up_approved_completes_on_retry(setup: Setup, gw: GatewayProc, served: Served) -> None:
    """A destructive call is held (pending approval ID error), approved with the CLI, and the retry
    of the same call completes; the approval and both call events are in the ledger."""
    token = setup.key("alice")
    approval_id = await _pending(gw, token, "r-approve")
    listed = json.loads(cli("gateway", "approvals", "list", "--config", str(setup.config), "--status", "pending",
                            "--json").stdout)["approvals"]
    assert approval_id in [a["approval_id"] for a in listed]
    done = cli("gateway", "approvals", "approve", approval_id, "--by", "carol", "--config", str(setup.config))
    assert done.returncode == 0, done.stderr
    async with agent(gw.url, token) as c:
        assert _text(await c.call_tool("demo__delete_record", {"record_id": "r-approve"})) == "deleted r-approve"
        with pytest.raises(MCPError) as again:  # one approval releases one call
            await c.call_tool("demo__delete_record", {"record_id": "r-approve"})
    assert again.value.code == -32002
    approval = wait_events(served, lambda e: e["type"] == "approval" and e["approval_id"] == approval_id, 1)[0]
    assert approval["decision"] == "granted" and approval["tool_name"] == "delete_record"
    pending = _calls(served, event_id=approval["call_event_id"])[0]
    assert (pending["status"], pending["decision"]) == ("pending", "step_up")
    assert _calls(served, tool_name="delete_record", status="ok")[0]["decision"] == "step_up"


async def test_step_up_approved_over_http_while_the_call_waits(setup: Setup, served: Served,
                                                               tmp_path: Path) -> None:
    """With a long hold, an approver's POST to the approvals API releases the waiting call at once."""
    long = write_setup(tmp_path, served, hold=20, database=str(setup.dir / "state.db"))
    gw2 = long.start()
    try:
        token = setup.key("alice")
        approver = json.loads(cli("gateway", "key", "create", "--config", str(long.config), "--approver", "dana",
                                  "--json").stdout)["token"]
        auth = {"Authorization": f"Bearer {approver}"}
        assert _http("GET", gw2.url + "/v1/approvals", headers={"Authorization": f"Bearer {token}"}).status_code == 403
        earlier = {a["approval_id"] for a in _http("GET", gw2.url + "/v1/approvals", headers=auth).json()["approvals"]}
        seen = {e["event_id"] for e in wait_events(served, lambda e: e["type"] == "approval", 0)}

        async def approve_when_asked() -> None:
            async with httpx.AsyncClient(base_url=gw2.url, headers=auth) as http:
                for _ in range(100):
                    listed = (await http.get("/v1/approvals", params={"status": "pending"})).json()["approvals"]
                    mine = [a for a in listed if a["approval_id"] not in earlier and a["tool"] == "delete_record"]
                    if mine:
                        r = await http.post(f"/v1/approvals/{mine[-1]['approval_id']}/approve")
                        assert r.status_code == 200, r.text
                        return
                    await asyncio.sleep(0.1)
            raise AssertionError(f"no pending approval appeared: {listed}")

        async with agent(gw2.url, token) as c:
            result, _ = await asyncio.gather(c.call_tool("demo__delete_record", {"record_id": "r-http"}),
                                             approve_when_asked())
        assert _text(result) == "deleted r-http"
        approval = wait_events(served, lambda e: e["type"] == "approval" and e.get("approval_id") not in earlier
                               and e["tool_name"] == "delete_record" and e["decision"] == "granted"
                               and e["event_id"] not in seen, 1)[0]
        call = _calls(served, event_id=approval["call_event_id"])[0]  # the approval names the completed call
        assert (call["status"], call["decision"]) == ("ok", "step_up")
    finally:
        gw2.stop()


async def test_step_up_rejected(setup: Setup, gw: GatewayProc, served: Served) -> None:
    """A rejected hold denies the retry and the upstream never runs the call."""
    token = setup.key("alice")
    before = (await _stats(gw, token)).get("delete_record", 0)
    approval_id = await _pending(gw, token, "r-reject")
    done = cli("gateway", "approvals", "reject", approval_id, "--by", "carol", "--reason", "wrong customer",
               "--config", str(setup.config))
    assert done.returncode == 0, done.stderr
    async with agent(gw.url, token) as c:
        with pytest.raises(MCPError) as refused:
            await c.call_tool("demo__delete_record", {"record_id": "r-reject"})
    assert refused.value.code == -32001 and "refused by carol" in refused.value.message
    assert (await _stats(gw, token)).get("delete_record", 0) == before
    approval = wait_events(served, lambda e: e["type"] == "approval" and e["approval_id"] == approval_id, 1)[0]
    assert approval["decision"] == "refused"


async def test_step_up_expires(setup: Setup, served: Served, tmp_path: Path) -> None:
    """An approval not decided within approval_ttl_seconds expires: the retry is denied, the expiry
    is recorded as a refused approval, and a late approver is told it expired."""
    short = write_setup(tmp_path, served, ttl=3, database=str(setup.dir / "state.db"))
    gw2 = short.start()
    try:
        token = setup.key("alice")
        approval_id = await _pending(gw2, token, "r-expire")
        await asyncio.sleep(3.1)
        async with agent(gw2.url, token) as c:
            with pytest.raises(MCPError) as expired:
                await c.call_tool("demo__delete_record", {"record_id": "r-expire"})
        assert expired.value.code == -32001 and f"approval {approval_id} expired" in expired.value.message
        late = cli("gateway", "approvals", "approve", approval_id, "--by", "carol", "--config", str(short.config))
        assert late.returncode == 1 and ("expired" in late.stderr or "consumed" in late.stderr)
        event = wait_events(served, lambda e: e["type"] == "approval" and e["approval_id"] == approval_id, 1)[0]
        assert event["decision"] == "refused"
    finally:
        gw2.stop()


async def test_a_tool_limit_refuses_while_a_read_tool_passes(setup: Setup, served: Served, tmp_path: Path) -> None:
    """update_note allows 2/min: the third call gets -32003 naming the limit and when to retry, a
    rate_limit event is recorded, and a read tool on the same server still passes."""
    own = write_setup(tmp_path, served, database=str(tmp_path / "own-state.db"))
    gw2 = own.start()
    try:
        async with agent(gw2.url, own.key("alice")) as c:
            for i in range(2):
                await c.call_tool("demo__update_note", {"key": f"n{i}", "text": "x"})
            with pytest.raises(MCPError) as limited:
                await c.call_tool("demo__update_note", {"key": "n3", "text": "x"})
            assert _text(await c.call_tool("demo__echo", {"text": "still here"})) == "still here"
        assert limited.value.code == -32003 and "tool:demo/update_note" in limited.value.message
        assert limited.value.data["retry_after_s"] > 0 and limited.value.data["scope"] == "tool"
        event = wait_events(served, lambda e: e["type"] == "rate_limit" and e.get("tool_name") == "update_note", 1)[0]
        assert (event["agent_id"], event["limit_id"], event["limit"]) == ("alice", "tool:demo/update_note", 2)
    finally:
        gw2.stop()


async def test_limits_are_shared_by_two_gateway_processes(served: Served, tmp_path: Path) -> None:
    """Two gateways on one SQLite state database draw from one bucket: 2/min in total, not per process."""
    await _shared_limits(served, tmp_path, str(tmp_path / "shared.db"))


async def test_limits_are_shared_through_postgres(served: Served, tmp_path: Path, fresh_db_url: str) -> None:
    """The same with the state in PostgreSQL, as gateways on several machines would share it."""
    await _shared_limits(served, tmp_path, fresh_db_url)


async def _shared_limits(served: Served, tmp_path: Path, database: str) -> None:
    first = write_setup(tmp_path / "a", served, database=database)
    second = write_setup(tmp_path / "b", served, database=database)
    g1, g2 = first.start(), second.start()
    try:
        token = first.key("alice")  # one state database: the key works on both
        outcomes = []
        for gw_ in (g1, g2, g1, g2):
            async with agent(gw_.url, token) as c:
                try:
                    await c.call_tool("demo__update_note", {"key": "shared", "text": "x"})
                    outcomes.append("ok")
                except MCPError as e:
                    outcomes.append(str(e.code))
        assert outcomes == ["ok", "ok", "-32003", "-32003"]
    finally:
        g1.stop()
        g2.stop()


async def test_stdio_agent(setup: Setup, served: Served) -> None:
    """``sealtrail gateway stdio --agent bob``: the same policy over stdio, recorded with bob's name."""
    async with stdio_agent(setup.config, "bob") as c:
        assert [t.name for t in (await c.list_tools()).tools] == ["demo__echo"]
        assert _text(await c.call_tool("demo__echo", {"text": "over stdio"})) == "over stdio"
        with pytest.raises(MCPError):
            await c.call_tool("demo__add", {"a": 1, "b": 2})
    found = wait_events(served, lambda e: e["type"] == "tool_call" and e["agent_id"] == "bob"
                        and e.get("session_id", "").startswith("stdio-"), 2)
    assert sorted((e["tool_name"], e["status"]) for e in found) == [("add", "denied"), ("echo", "ok")]
