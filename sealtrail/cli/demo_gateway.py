"""The gateway part of ``sealtrail demo``: real MCP calls from an ``mcp`` client through
``sealtrail gateway`` to the example MCP server, then the same calls found in the ledger.

Four calls show the gate: an allowed read, a call off the agent's allow-list, a destructive call held
for step-up and approved by the demo over the approvals API while it waits, and a rate-limit hit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "mcp_server.py"
CONFIG = """
policy_id = "demo-policy"
[gateway]
listen = "127.0.0.1:{port}"
hold_seconds = 20
[ledger]
url = "{ledger}"
token_file = "ledger.token"
spool_dir = "spool"
[state]
database = "state.db"
[servers.example]
command = ["{python}", "{example}"]
tier_default = "read"
[servers.example.tools.lookup_customer]
[servers.example.tools.echo]
[servers.example.tools.update_note]
tier = "write"
rate_limit = "1/min"
[servers.example.tools.delete_record]
tier = "destructive"
[agents.desk-bot]
allow = ["example/*"]
[agents.intern-bot]
allow = ["example/echo"]
[[subjects.rules]]
argument = "email"
kind = "user"
"""


def available() -> bool:
    import importlib.util

    return EXAMPLE.exists() and importlib.util.find_spec("mcp") is not None


def run(console: Console, url: str, gateway_token: str, investigator: str, tmp: Path, port: int) -> int:
    """Run the four calls and show them from the ledger; return how many tool_call events they made."""
    (tmp / "ledger.token").write_text(gateway_token + "\n")
    config = tmp / "gateway.toml"
    config.write_text(CONFIG.format(port=port, ledger=url, python=sys.executable, example=EXAMPLE))
    keys = asyncio.run(_keys(config))
    with _gateway(config, port) as gw_url:
        console.print(f"  sealtrail gateway --config {config.name} on {gw_url}/mcp, upstream examples/mcp_server.py")
        outcomes = asyncio.run(_calls(gw_url, keys))
    for line in outcomes:
        console.print("  " + line)
    _show(console, url, investigator, n=4)
    return 4


async def _keys(config: Path) -> dict[str, str]:
    from services.gateway import config as gw_config
    from services.gateway import keys
    from services.gateway.app import open_store

    cfg = gw_config.load(config)
    store = await open_store(cfg.state_database)
    out = {}
    try:
        for name in ("desk-bot", "intern-bot", "@demo-approver"):
            new, record = keys.mint(name, time.time())
            await store.create_key(record)
            out[name] = new.token
    finally:
        await store.close()
    return out


@contextlib.contextmanager
def _gateway(config: Path, port: int) -> Iterator[str]:
    proc = subprocess.Popen([sys.executable, "-m", "sealtrail.cli.main", "gateway", "--config", str(config)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    gw_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(gw_url + "/healthz", timeout=1).status_code == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("sealtrail gateway did not start")
            time.sleep(0.1)
        yield gw_url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


async def _calls(gw_url: str, keys: dict[str, str]) -> list[str]:
    from mcp.shared.exceptions import MCPError

    lines = []
    async with _client(gw_url, keys["desk-bot"]) as bot, _client(gw_url, keys["intern-bot"]) as intern:
        r = await bot.call_tool("example__lookup_customer", {"email": "alice@example.com"})
        lines.append(f"allowed read   example__lookup_customer -> {json.dumps(r.structured_content)}")
        try:
            await intern.call_tool("example__delete_record", {"record_id": "r-17"})
        except MCPError as e:
            lines.append(f"denied         intern-bot example__delete_record -> error {e.code}: {e.message}")
        held, approver = await asyncio.gather(bot.call_tool("example__delete_record", {"record_id": "r-17"}),
                                              _approve(gw_url, keys["@demo-approver"]))
        lines.append(f"step-up        example__delete_record held, {approver}, then -> {_text(held)}")
        await bot.call_tool("example__update_note", {"key": "alice", "text": "called back"})
        try:
            await bot.call_tool("example__update_note", {"key": "alice", "text": "again"})
        except MCPError as e:
            lines.append(f"rate limited   example__update_note (1/min) second call -> error {e.code}: {e.message}")
    return lines


async def _approve(gw_url: str, token: str) -> str:
    async with httpx.AsyncClient(base_url=gw_url, headers={"Authorization": f"Bearer {token}"}) as http:
        for _ in range(200):
            pending = (await http.get("/v1/approvals", params={"status": "pending"})).json()["approvals"]
            if pending:
                done = await http.post(f"/v1/approvals/{pending[0]['approval_id']}/approve")
                done.raise_for_status()
                return f"approved {pending[0]['approval_id']} over POST /v1/approvals/ID/approve"
            await asyncio.sleep(0.1)
    raise RuntimeError("no call was held for approval")


@contextlib.asynccontextmanager
async def _client(gw_url: str, token: str) -> Any:
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    async with Client(streamable_http_client(gw_url + "/mcp", http_client=http), mode="legacy", cache=None) as c:
        yield c


def _text(result: Any) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


def _show(console: Console, url: str, token: str, *, n: int) -> None:
    """The gateway's calls as the ledger's query API returns them."""
    calls: list[dict[str, Any]] = []
    deadline = time.monotonic() + 30
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
        while time.monotonic() < deadline:
            found = []
            for agent in ("desk-bot", "intern-bot"):
                r = http.get("/v1/calls", params={"agent": agent, "limit": 100})
                r.raise_for_status()
                found += [c["header"] for c in r.json()["calls"] if c["header"].get("server_id") == "example"]
            calls = found
            if len(calls) >= n + 1:  # the four shown and the first update_note
                break
            time.sleep(0.3)
    table = Table(title="The gateway's calls, found in the ledger (GET /v1/calls)")
    for col in ("agent", "tool", "decision", "status", "policy version"):
        table.add_column(col)
    for c in sorted(calls, key=lambda c: str(c.get("occurred_at"))):
        table.add_row(c["agent_id"], c["tool_name"], c["decision"], c["status"], str(c.get("policy_version"))[:23])
    console.print(table)
