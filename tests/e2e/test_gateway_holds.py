"""A step-up hold longer than ``hold_seconds``, with clients that can be asked to keep waiting:
the 2026-07-28 input-required result, and an elicitation request on an SSE answer of the
handshake era; a client that declines, and one on JSON answers, get the "pending approval" error."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError

from tests.support.gateway import GatewayProc, Setup, write_setup
from tests.support.serve import Served, cli, start_serve


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    s = start_serve(tmp_path_factory.mktemp("gwh-ledger") / "data")
    yield s
    s.stop()


def _start(served: Served, tmp: Path, *, sse: bool) -> tuple[Setup, GatewayProc]:
    setup = write_setup(tmp, served, hold=1, ttl=60)
    if sse:
        setup.config.write_text(setup.config.read_text().replace("[gateway]\n", "[gateway]\njson_response = false\n"))
    return setup, setup.start()


@pytest.fixture(scope="module")
def json_gw(served: Served, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Setup, GatewayProc]]:
    setup, gw = _start(served, tmp_path_factory.mktemp("gwh-json"), sse=False)
    yield setup, gw
    setup.stop_all()


@pytest.fixture(scope="module")
def sse_gw(served: Served, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Setup, GatewayProc]]:
    setup, gw = _start(served, tmp_path_factory.mktemp("gwh-sse"), sse=True)
    yield setup, gw
    setup.stop_all()


class Asker:
    """An elicitation callback that answers ``action`` and counts what it was asked."""

    def __init__(self, action: str) -> None:
        self.action, self.asked = action, []  # type: ignore[var-annotated]

    async def __call__(self, _ctx: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        self.asked.append(params.message)
        return types.ElicitResult(action=self.action, content={} if self.action == "accept" else None)


@contextlib.asynccontextmanager
async def _client(gw: GatewayProc, token: str, mode: str, asker: Asker) -> AsyncIterator[Client]:
    transport = streamable_http_client(gw.url + "/mcp", http_client=create_mcp_http_client(
        headers={"Authorization": f"Bearer {token}"}))
    async with Client(transport, mode=mode, cache=None, elicitation_callback=asker) as c:  # type: ignore[arg-type]
        yield c


async def _approve_when_asked(setup: Setup, asker: Asker) -> str:
    """Once the client was asked to keep waiting, an approver approves the pending approval."""
    for _ in range(200):
        if asker.asked:
            break
        await asyncio.sleep(0.05)
    assert asker.asked, "the client was never asked to keep waiting"
    approval_id = str(asker.asked[0]).split("pending approval ")[1].split(" ")[0]
    done = cli("gateway", "approvals", "approve", approval_id, "--by", "carol", "--config", str(setup.config))
    assert done.returncode == 0, done.stderr
    return approval_id


@pytest.mark.parametrize(("mode", "which"), [("auto", "json_gw"), ("legacy", "sse_gw")])
async def test_a_client_that_keeps_waiting_gets_the_result(mode: str, which: str,
                                                           request: pytest.FixtureRequest) -> None:
    """2026-07-28 (input-required) and handshake era with SSE answers (elicitation on the call's
    stream): the hold outlasts hold_seconds, the client is asked, accepts, the approver approves,
    and the same call returns the tool's result."""
    setup, gw = request.getfixturevalue(which)
    asker = Asker("accept")
    async with _client(gw, setup.key("alice"), mode, asker) as c:
        assert (c.protocol_version == "2026-07-28") == (mode == "auto")
        call = asyncio.create_task(c.call_tool("demo__delete_record", {"record_id": f"wait-{mode}"}))
        approval_id = await _approve_when_asked(setup, asker)
        result = await asyncio.wait_for(call, 60)
    assert "".join(getattr(x, "text", "") for x in result.content) == f"deleted wait-{mode}"
    assert approval_id.startswith("apr_") and "Keep waiting?" in asker.asked[0]


@pytest.mark.parametrize(("mode", "which"), [("auto", "json_gw"), ("legacy", "sse_gw")])
async def test_a_client_that_declines_gets_the_pending_error(mode: str, which: str,
                                                             request: pytest.FixtureRequest) -> None:
    """The client is asked and declines: the call ends with -32002 naming the approval, which stays
    pending for a retry."""
    setup, gw = request.getfixturevalue(which)
    asker = Asker("decline")
    async with _client(gw, setup.key("alice"), mode, asker) as c:
        with pytest.raises(MCPError) as stopped:
            await c.call_tool("demo__delete_record", {"record_id": f"decline-{mode}"})
    assert stopped.value.code == -32002 and asker.asked
    approval_id = stopped.value.message.split("pending approval ")[1].split(":")[0]
    listed = json.loads(cli("gateway", "approvals", "list", "--config", str(setup.config), "--status", "pending",
                            "--json").stdout)["approvals"]
    assert approval_id in [a["approval_id"] for a in listed]


async def test_json_answers_of_the_handshake_era_cannot_ask(json_gw: tuple[Setup, GatewayProc]) -> None:
    """With JSON answers a handshake-era request has no channel back to the client: the agent gets
    the pending error after hold_seconds and its elicitation callback is never called."""
    setup, gw = json_gw
    asker = Asker("accept")
    async with _client(gw, setup.key("alice"), "legacy", asker) as c:
        with pytest.raises(MCPError) as held:
            await c.call_tool("demo__delete_record", {"record_id": "json-legacy"})
    assert held.value.code == -32002 and not asker.asked
