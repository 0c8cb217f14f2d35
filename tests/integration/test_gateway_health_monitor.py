"""HealthMonitor and ServerGuard on a real SQLite state store and the real example MCP server over
stdio: a passing check hands the listed tools to every on_tools listener and records a valid
health_check event; failures count up to unhealthy and the guard refuses at once; a stored env
credential reaches the stdio process."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from sealtrail.core.sealing import Kek
from sealtrail.core.validation import validate_batch
from services.gateway import credentials, errors
from services.gateway.config import GatewayConfig, LedgerConfig, ServerConfig
from services.gateway.health import HealthMonitor
from services.gateway.ports import StatusChange
from services.gateway.sqlite import SqliteGatewayStore
from services.gateway.status import ServerGuard


def validate_event(event: dict[str, Any]) -> None:
    """The event passes the ledger's own validation (its JSON Schema and field rules)."""
    _, rejected = validate_batch([event], now=datetime.now(UTC))
    assert not rejected, rejected


ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = (sys.executable, str(ROOT / "examples" / "mcp_server.py"))
ENV_PRINTER = """
import os
from mcp.server.mcpserver import MCPServer
server = MCPServer("env")
@server.tool()
def token_length() -> int:
    \"\"\"The length of API_TOKEN as this process sees it.\"\"\"
    return len(os.environ.get("API_TOKEN", ""))
if os.environ.get("API_TOKEN") != "tok-env-1234":
    raise SystemExit(3)
server.run()
"""


def _cfg(tmp: Path, **servers: ServerConfig) -> GatewayConfig:
    return GatewayConfig(path=tmp / "gateway.toml", policy_id="p", ledger=LedgerConfig("http://127.0.0.1:9", tmp / "t"),
                         state_database=str(tmp / "state.db"), servers=dict(servers))


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteGatewayStore]:
    s = SqliteGatewayStore(tmp_path / "state.db")
    yield s
    await s.close()


async def test_a_passing_check_feeds_tools_listeners_and_records_a_valid_event(
        tmp_path: Path, store: SqliteGatewayStore) -> None:
    recorded: list[dict[str, Any]] = []
    seen: list[tuple[str, list[str]]] = []

    async def record(event: dict[str, Any]) -> None:
        recorded.append(event)

    async def on_tools(server: str, tools: list[dict[str, Any]]) -> None:
        seen.append((server, sorted(t["name"] for t in tools)))

    cfg = _cfg(tmp_path, demo=ServerConfig(name="demo", command=EXAMPLE))
    monitor = HealthMonitor(cfg, store, record)
    monitor.add_tools_listener(on_tools)
    report = await monitor.check("demo")
    assert report.status == "ok" and report.state == "healthy" and report.tools and report.latency_ms > 0
    assert seen and seen[0][0] == "demo" and "echo" in seen[0][1]
    assert len(recorded) == 1
    validate_event(recorded[0])
    assert recorded[0]["status"] == "healthy" and recorded[0]["payload"]["trigger"] == "on_demand"


async def test_failures_turn_a_server_unhealthy_and_the_guard_refuses(tmp_path: Path,
                                                                      store: SqliteGatewayStore) -> None:
    """A command that exits at once: degraded, then unhealthy at the second failure; the guard
    refuses with -32008; a disabled server is refused with -32007 before its health is looked at."""
    recorded: list[dict[str, Any]] = []

    async def record(event: dict[str, Any]) -> None:
        recorded.append(event)

    gone = ServerConfig(name="gone", command=(sys.executable, "-c", "raise SystemExit(1)"), unhealthy_after=2,
                        timeout_s=5)
    guard = ServerGuard(store, store, cache_s=0)
    monitor = HealthMonitor(_cfg(tmp_path, gone=gone), store, record, guard=guard)
    first, second = await monitor.check("gone"), await monitor.check("gone")
    assert (first.status, first.state, second.state) == ("unreachable", "healthy", "unhealthy")
    assert [e["status"] for e in recorded] == ["degraded", "unhealthy"]
    for e in recorded:
        validate_event(e)
    refusal = await guard.refusal("gone")
    assert refusal is not None and refusal.code == errors.SERVER_UNHEALTHY and "2 failed" in refusal.message
    await store.set_server_state(StatusChange("gone", "inactive", "retired", "op", 1.0))
    refusal = await guard.refusal("gone")
    assert refusal is not None and refusal.code == errors.SERVER_DISABLED and "retired" in refusal.message
    assert await guard.refusal("other") is None


async def test_a_stored_env_credential_reaches_the_stdio_server(tmp_path: Path, store: SqliteGatewayStore) -> None:
    """The stdio server refuses to start without API_TOKEN; with the stored credential the check passes."""
    script = tmp_path / "env_server.py"
    script.write_text(ENV_PRINTER)
    server = ServerConfig(name="envy", command=(sys.executable, str(script)), timeout_s=10)
    kek = Kek.generate()

    async def record(_: dict[str, Any]) -> None:
        return None

    monitor = HealthMonitor(_cfg(tmp_path, envy=server), store, record, kek=kek)
    assert (await monitor.check("envy")).status == "unreachable"
    await credentials.set_credential(store, kek, record, server, kind="env", name="API_TOKEN", secret="tok-env-1234",
                                     by="test")
    report = await monitor.check("envy")
    assert report.status == "ok" and report.credential_version == 1


async def test_a_running_stdio_server_is_checked_on_its_connection(tmp_path: Path, store: SqliteGatewayStore) -> None:
    """With the gateway's connection to the stdio server open, a check lists the tools on it (no second
    process, the same connection afterwards); with none open, the check starts its own process."""
    from services.gateway.upstream import Upstream

    async def record(_: dict[str, Any]) -> None:
        return None

    server = ServerConfig(name="demo", command=EXAMPLE)
    live = Upstream(server)
    monitor = HealthMonitor(_cfg(tmp_path, demo=server), store, record, upstreams={"demo": live})
    try:
        cold = await monitor.check("demo")
        assert cold.status == "ok" and "running server" not in cold.message and not live.connected
        await live.tools()
        warm = await monitor.check("demo")
        assert warm.status == "ok" and "running server" in warm.message and warm.tools == cold.tools
        assert live.connected and live.connects == 1
    finally:
        await live.close()
