"""``sealtrail gateway`` as child processes in front of real MCP servers, with ``sealtrail serve`` as
the ledger, and real ``mcp`` clients for agents."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from tests.support.embedded import read_rows
from tests.support.serve import TENANT, Served, cli, free_port

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_SERVER = ROOT / "examples" / "mcp_server.py"

BASE_CONFIG = """
policy_id = "test-policy"

[gateway]
listen = "127.0.0.1:{port}"
hold_seconds = {hold}
approval_ttl_seconds = {ttl}

[ledger]
url = "{ledger}"
token_file = "ledger.token"
spool_dir = "spool"

[state]
database = "{database}"

[servers.demo]
command = ["{python}", "{example}"]
tier_default = "read"
rate_limit = "1000/s"

[servers.demo.tools.echo]
[servers.demo.tools.add]
[servers.demo.tools.lookup_customer]
[servers.demo.tools.crash]
[servers.demo.tools.stats]
[servers.demo.tools.sleep]
timeout_seconds = 1

[servers.demo.tools.update_note]
tier = "write"
mode = "observe"
rate_limit = "2/min"

[servers.demo.tools.delete_record]
tier = "destructive"

[servers.demo.tools.grow]
tier = "write"

[agents.alice]
allow = ["demo/*"{alice_extra}]

[agents.bob]
allow = ["demo/echo"]

[[subjects.rules]]
argument = "email"
kind = "user"
"""


@dataclass
class GatewayProc:
    config: Path
    port: int
    proc: subprocess.Popen[bytes]
    err: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stderr(self) -> str:
        return self.err.read_text()

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout=10)


@dataclass
class Setup:
    """A configuration directory: the config file, the ledger token, agent keys."""

    dir: Path
    config: Path
    keys: dict[str, str] = field(default_factory=dict)
    gateways: list[GatewayProc] = field(default_factory=list)

    def key(self, agent: str) -> str:
        if agent not in self.keys:
            done = cli("gateway", "key", "create", "--config", str(self.config), "--agent", agent, "--json")
            assert done.returncode == 0, done.stderr
            self.keys[agent] = json.loads(done.stdout)["token"]
        return self.keys[agent]

    def start(self, *, port: int | None = None, config: Path | None = None) -> GatewayProc:
        config = config or self.config
        text = config.read_text()
        port = port or int(text.split('listen = "127.0.0.1:')[1].split('"')[0])
        err = self.dir / f"gateway-{len(self.gateways)}.err"
        with open(err, "wb") as e:
            proc = subprocess.Popen([sys.executable, "-m", "sealtrail.cli.main", "gateway", "--config", str(config)],
                                    stdout=e, stderr=subprocess.STDOUT,
                                    env={**os.environ, "SEALTRAIL_LOG_LEVEL": "INFO"})
        gw = GatewayProc(config, port, proc, err)
        self.gateways.append(gw)
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"sealtrail gateway exited with {proc.returncode}: {gw.stderr()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(gw.url + "/healthz", timeout=1).status_code == 200:
                    return gw
            if time.monotonic() > deadline:
                gw.stop(signal.SIGKILL)
                raise RuntimeError(f"sealtrail gateway did not answer within 30 s: {gw.stderr()[-3000:]}")
            time.sleep(0.05)

    def stop_all(self) -> None:
        for gw in self.gateways:
            gw.stop()


def write_setup(tmp: Path, served: Served | None, *, hold: float = 1, ttl: float = 30, extra: str = "",
                database: str = "state.db", port: int | None = None, alice_extra: str = "",
                ledger: tuple[str, str] | None = None) -> Setup:
    """A configuration directory whose ledger is ``served`` (its gateway token), or ``ledger``
    given as (URL, gateway-role token)."""
    url, token = ledger if ledger is not None else (served.url, served.tokens["gateway"])  # type: ignore[union-attr]
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "ledger.token").write_text(token + "\n")
    config = tmp / "gateway.toml"
    config.write_text(BASE_CONFIG.format(port=port or free_port(), hold=hold, ttl=ttl, ledger=url,
                                         database=database, python=sys.executable, example=EXAMPLE_SERVER,
                                         alice_extra=alice_extra) + extra)
    return Setup(tmp, config)


@contextlib.asynccontextmanager
async def agent(url: str, token: str | None, *, mode: str = "legacy") -> AsyncIterator[Client]:
    """An ``mcp`` client over Streamable HTTP presenting ``token``."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    transport = streamable_http_client(url + "/mcp", http_client=create_mcp_http_client(headers=headers))
    async with Client(transport, mode=mode, cache=None) as client:
        yield client


@contextlib.asynccontextmanager
async def stdio_agent(config: Path, agent_name: str) -> AsyncIterator[Client]:
    params = StdioServerParameters(command=sys.executable, args=["-m", "sealtrail.cli.main", "gateway", "stdio",
                                                                 "--config", str(config), "--agent", agent_name],
                                   env={"PYTHONPATH": str(ROOT)}, cwd=str(ROOT))
    async with Client(params, mode="legacy", cache=None) as client:
        yield client


def ledger_events(served: Served, *, type_: str | None = None) -> list[dict[str, Any]]:
    """The headers of the entries in the served ledger, in log order."""
    db = served.data_dir / "sealtrail.db"
    rows = read_rows(db, "SELECT entry FROM entries WHERE log_id = ? ORDER BY idx", (TENANT,))
    found = [json.loads(r[0]) for r in rows]
    return [e for e in found if type_ is None or e.get("type") == type_]


def wait_events(served: Served, predicate: Any, n: int, *, timeout: float = 30) -> list[dict[str, Any]]:
    """Wait until at least ``n`` ledger entries satisfy ``predicate``; return them."""
    deadline = time.monotonic() + timeout
    while True:
        found = [e for e in ledger_events(served) if predicate(e)]
        if len(found) >= n or time.monotonic() > deadline:
            return found
        time.sleep(0.1)
