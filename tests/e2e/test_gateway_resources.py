"""Resources, prompts and completions of ``@modelcontextprotocol/server-everything`` through the
gateway, with a real ``mcp`` client: namespaced (``sealtrail://SERVER/URI``, ``SERVER__PROMPT``),
deny by default (``SERVER/@resources``, ``SERVER/@prompts`` on the allow-list), subscriptions
relayed, and counted in the metrics (no event schema fits them, so none is recorded)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from typing import Any

import httpx
import mcp_types as types
import pytest
from mcp.shared.exceptions import MCPError

from tests.support.gateway import GatewayProc, Setup, agent, ledger_events, write_setup
from tests.support.npm_servers import mcp_servers
from tests.support.serve import Served, start_serve

CONFIG = """
[servers.everything]
command = ["node", "{modules}/server-everything/dist/index.js", "stdio"]
tier_default = "read"
[servers.everything.tools.echo]
[servers.everything.tools.toggle-subscriber-updates]

[agents.reader]
allow = ["everything/*", "everything/@resources", "everything/@prompts"]

[agents.toolsonly]
allow = ["everything/*"]
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    s = start_serve(tmp_path_factory.mktemp("gwr-ledger") / "data")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def setup(served: Served, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    s = write_setup(tmp_path_factory.mktemp("gwr"), served, extra=CONFIG.format(modules=mcp_servers()))
    s.start()
    yield s
    s.stop_all()


@pytest.fixture(scope="module")
def gw(setup: Setup) -> GatewayProc:
    return setup.gateways[0]


def _forwarded(gw: GatewayProc) -> dict[tuple[str, str], float]:
    text = httpx.get(gw.url + "/metrics", timeout=10).text
    pattern = r'sealtrail_gateway_forwarded_total\{method="([^"]+)",outcome="([^"]+)",server="everything"\} (\S+)'
    return {(m, o): float(v) for m, o, v in re.findall(pattern, text)}


async def test_resources_and_prompts_are_forwarded_under_their_names(setup: Setup, gw: GatewayProc,
                                                                     served: Served) -> None:
    """An allowed agent lists and reads resources as sealtrail://everything/..., lists templates,
    lists and gets prompts as everything__..., and completes a prompt argument; each request is
    counted, and nothing of them enters the ledger."""
    before_events = len(ledger_events(served))
    async with agent(gw.url, setup.key("reader")) as c:
        resources = (await c.list_resources()).resources
        assert resources and all(str(r.uri).startswith("sealtrail://everything/") for r in resources)
        first = resources[0]
        read = await c.read_resource(str(first.uri))
        assert read.contents and str(read.contents[0].uri) == str(first.uri)
        templates = (await c.list_resource_templates()).resource_templates
        assert any(t.uri_template.startswith("sealtrail://everything/demo://resource/dynamic/") for t in templates)
        dynamic = await c.read_resource("sealtrail://everything/demo://resource/dynamic/text/3")
        assert str(dynamic.contents[0].uri) == "sealtrail://everything/demo://resource/dynamic/text/3"

        prompts = {p.name for p in (await c.list_prompts()).prompts}
        assert {"everything__simple-prompt", "everything__completable-prompt"} <= prompts
        got = await c.get_prompt("everything__args-prompt", {"city": "Lyon", "state": "Rhône"})
        assert "Lyon" in str(got.messages[0].content)
        done = await c.complete(types.PromptReference(type="ref/prompt", name="everything__completable-prompt"),
                                {"name": "department", "value": "Eng"})
        assert done.completion.values == ["Engineering"]
    counted = _forwarded(gw)
    assert counted[("resources/read", "ok")] >= 2 and counted[("prompts/get", "ok")] >= 1
    assert counted[("completion/complete", "ok")] >= 1
    await asyncio.sleep(1.0)
    assert not [e for e in ledger_events(served)[before_events:] if e["type"] == "tool_call"]


async def test_deny_by_default(setup: Setup, gw: GatewayProc) -> None:
    """An agent without the @resources and @prompts entries sees no resources or prompts and is
    refused reading or getting them by name (JSON-RPC -32001 naming the missing entry);
    logging/setLevel is refused as a method the gateway does not offer."""
    async with agent(gw.url, setup.key("toolsonly")) as c:
        assert (await c.list_resources()).resources == []
        assert (await c.list_prompts()).prompts == []
        with pytest.raises(MCPError) as refused:
            await c.read_resource("sealtrail://everything/demo://resource/dynamic/text/1")
        assert refused.value.code == -32001 and "everything/@resources" in refused.value.message
        with pytest.raises(MCPError) as refused:
            await c.get_prompt("everything__simple-prompt")
        assert refused.value.code == -32001 and "everything/@prompts" in refused.value.message
        with pytest.raises(MCPError) as refused:
            await c.complete(types.PromptReference(type="ref/prompt", name="everything__completable-prompt"),
                             {"name": "department", "value": "S"})
        assert refused.value.code == -32001
        with pytest.raises(MCPError) as unknown:
            await c.set_logging_level("debug")
        assert unknown.value.code == types.METHOD_NOT_FOUND
    assert _forwarded(gw)[("resources/read", "denied")] >= 1


async def test_a_subscription_is_relayed(setup: Setup, gw: GatewayProc) -> None:
    """The agent subscribes to a resource through the gateway; the upstream's
    notifications/resources/updated reaches it under the gateway's URI; it unsubscribes."""
    updated: list[str] = []

    async def on_message(message: Any) -> None:
        root = getattr(message, "root", message)
        if getattr(root, "method", "") == "notifications/resources/updated":
            updated.append(str(root.params.uri))

    uri = "sealtrail://everything/demo://resource/dynamic/text/1"
    async with agent(gw.url, setup.key("reader")) as c:
        c.session._message_handler = on_message
        await c.subscribe_resource(uri)
        await c.call_tool("everything__toggle-subscriber-updates", {})
        for _ in range(100):
            if updated:
                break
            await asyncio.sleep(0.1)
        await c.call_tool("everything__toggle-subscriber-updates", {})
        await c.unsubscribe_resource(uri)
    assert updated and updated[0] == uri
    assert _forwarded(gw)[("resources/subscribe", "ok")] >= 1
