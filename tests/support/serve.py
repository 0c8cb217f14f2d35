"""``sealtrail serve`` as a child process on a free port, for tests and the embedded benchmark."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from sealtrail.sdk import events
from sealtrail.sdk.client import Accepted, SealtrailClient

TENANT = "default"
"""The tenant a first run of ``sealtrail serve`` creates."""
TOKEN_LINE = re.compile(r"^\s+(\w+)\s+token\s+(st_\S+)$", re.MULTILINE)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def cli(*args: str, timeout: float = 60, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``sealtrail ARGS`` with this interpreter; output captured as text."""
    return subprocess.run([sys.executable, "-m", "sealtrail.cli.main", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})}, check=False)


@dataclass
class Served:
    """One running ``sealtrail serve`` and the files its output goes to."""

    data_dir: Path
    port: int
    proc: subprocess.Popen[bytes]
    out: Path
    err: Path
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stdout(self) -> str:
        return self.out.read_text()

    def stderr(self) -> str:
        return self.err.read_text()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        """Send ``sig`` and wait for the exit; return the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)


def start_serve(data_dir: Path, *, port: int | None = None, logs: Path | None = None,
                timeout: float = 30) -> Served:
    """Start ``sealtrail serve`` and wait until it answers; tokens come from its first-run output."""
    port = port or free_port()
    logs = logs or data_dir.parent
    n = len(list(logs.glob("serve-*.out")))
    out, err = logs / f"serve-{n}.out", logs / f"serve-{n}.err"
    with open(out, "wb") as o, open(err, "wb") as e:
        proc = subprocess.Popen([sys.executable, "-m", "sealtrail.cli.main", "serve", "--data-dir", str(data_dir),
                                 "--port", str(port)], stdout=o, stderr=e)
    served = Served(data_dir, port, proc, out, err)
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"sealtrail serve exited with {proc.returncode}: {served.stderr()[-2000:]}")
        try:
            if httpx.get(served.url + "/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            served.stop(signal.SIGKILL)
            raise RuntimeError(f"sealtrail serve did not answer within {timeout} s: {served.stderr()[-2000:]}")
        time.sleep(0.05)
    served.tokens = dict(TOKEN_LINE.findall(served.stdout()))
    return served


def wait_for_checkpoint(url: str, token: str, log: str, size: int, *, timeout: float = 60) -> int:
    """Wait until a signed checkpoint of ``log`` covers ``size`` entries; return its size."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = httpx.get(f"{url}/v1/logs/{log}/checkpoint", headers={"Authorization": f"Bearer {token}"})
        if r.status_code == 200 and int(r.text.splitlines()[1]) >= size:
            return int(r.text.splitlines()[1])
        time.sleep(0.1)
    raise TimeoutError(f"no checkpoint of {log} covers {size} entries after {timeout} s")


def serve_event(i: int, agent: str = "agent-1") -> dict[str, Any]:
    """A tool call with a payload that names one data subject."""
    return events.tool_call(agent_id=agent, server_id="crm", tool_name="lookup_customer", tool_tier="read",
                            decision="allow", status="ok", session_id=f"sess-{agent}",
                            payload={"arguments": {"n": i, "email": "alice@example.com"}},
                            subjects=["user:alice@example.com"])


async def send_events(url: str, token: str, batch: list[dict[str, Any]]) -> list[str]:
    """Send through the SDK; the ids of the events acknowledged."""
    accepted: list[Accepted] = []
    async with SealtrailClient(url, token, on_accepted=accepted.extend) as client:
        for e in batch:
            await client.send(e)
    return [a.event_id for a in accepted]


def create_key(served: Served, role: str) -> str:
    """A new API key of ``role`` in the served tenant (``sealtrail admin key create``); its token."""
    done = cli("admin", "key", "create", "--data-dir", str(served.data_dir), "--tenant", TENANT, "--role", role,
               "--json")
    assert done.returncode == 0, done.stderr
    token: str = json.loads(done.stdout)["token"]
    return token
