"""``sealtrail serve`` and ``sealtrail demo`` as a user runs them: child processes, no PostgreSQL or Kafka."""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from sealtrail.core.receipt import RECEIPT_FORMAT
from sealtrail.sdk.client import Accepted, SealtrailClient
from tests.support.embedded import read_rows
from tests.support.serve import (
    TENANT,
    Served,
    cli,
    create_key,
    free_port,
    send_events,
    serve_event,
    start_serve,
    wait_for_checkpoint,
)


def _calls(served: Served, token: str, agent: str) -> list[dict[str, Any]]:
    r = httpx.get(f"{served.url}/v1/calls", params={"agent": agent, "limit": 1000},
                  headers={"Authorization": f"Bearer {token}"})
    r.raise_for_status()
    calls: list[dict[str, Any]] = r.json()["calls"]
    return calls


def _logged_event_ids(db: Path) -> list[str]:
    return [r[0] for r in read_rows(db, "SELECT event_id FROM entries WHERE log_id = ?", (TENANT,))]


def _verify(served: Served, token: str) -> str:
    done = cli("verify", "--url", served.url, "--log", TENANT, "--token", token)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _wait_projected(served: Served, token: str, agent: str, n: int) -> list[dict[str, Any]]:
    for _ in range(100):
        calls = _calls(served, token, agent)
        if len(calls) >= n:
            return calls
        asyncio.run(asyncio.sleep(0.1))
    return _calls(served, token, agent)


def test_first_run_serves_and_a_restart_keeps_everything(tmp_path: Path) -> None:
    """First run prints an operator and a gateway token, keeps secrets 0600 in a 0700 directory and
    never prints the KEK; GET /v1/keys lists every verifier key without a token; a second serve of
    the directory is refused; SDK events are searchable;
    after a restart nothing is lost, the old tokens still work, nothing is created again, and the
    log verifies."""
    data = tmp_path / "data"
    served = start_serve(data)
    try:
        assert set(served.tokens) == {"operator", "gateway"}
        assert "sealtrail admin key create --data-dir" in served.stdout()
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
        for f in [data / "kek", data / "sealtrail.db", *(data / "keys").iterdir()]:
            assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
        kek = (data / "kek").read_text().strip()
        assert len(kek) == 64 and kek not in served.stdout() + served.stderr()
        keys = httpx.get(f"{served.url}/v1/keys").json()  # public: gateways and auditors alike
        assert {k["purpose"] for k in keys["keys"]} == {"receipt", "checkpoint", "cosign", "erasure-receipt"}
        assert [k["vkey"] for k in keys["receipt"]] == [k["vkey"] for k in keys["keys"] if k["purpose"] == "receipt"]
        assert keys["receipt_format"] == RECEIPT_FORMAT
        twice = cli("serve", "--data-dir", str(data), "--port", str(served.port + 1), timeout=30)
        assert twice.returncode == 1 and "already being served" in twice.stderr
        investigator, auditor = create_key(served, "investigator"), create_key(served, "auditor")
        first = asyncio.run(send_events(served.url, served.tokens["gateway"], [serve_event(i) for i in range(300)]))
        assert len(first) == 300
        wait_for_checkpoint(served.url, auditor, TENANT, 300)
        assert {c["header"]["event_id"] for c in _wait_projected(served, investigator, "agent-1", 300)} == set(first)
    finally:
        assert served.stop() in (0, -signal.SIGTERM)  # uvicorn re-raises SIGTERM after a clean shutdown
        assert "Application shutdown complete" in served.stderr()
    again = start_serve(data, port=served.port)
    try:
        assert again.tokens == {} and "first run" not in again.stdout()
        later = [serve_event(i, "agent-2") for i in range(50)]
        second = asyncio.run(send_events(again.url, served.tokens["gateway"], later))
        wait_for_checkpoint(again.url, auditor, TENANT, 350)
        assert len(_calls(again, investigator, "agent-1")) == 300
        assert len(_wait_projected(again, investigator, "agent-2", 50)) == len(second) == 50
        assert "350 entries" in _verify(again, auditor)
        assert kek not in again.stdout() + again.stderr()
    finally:
        again.stop()


async def _traffic(url: str, token: str, acked: set[str], stop: asyncio.Event, spool: Path) -> None:
    """Send batches until ``stop``; record every event id the server answered 202 for."""
    def on_accepted(items: list[Accepted]) -> None:
        acked.update(a.event_id for a in items)

    async with SealtrailClient(url, token, batch_max=200, flush_interval_s=0.02, spool_dir=spool,
                               on_accepted=on_accepted) as client:
        i = 0
        while not stop.is_set():
            await client.send(serve_event(i, "agent-k"))
            i += 1
            if i % 200 == 0:
                await asyncio.sleep(0.01)


async def _until(condition: Callable[[], bool], seconds: float = 60) -> None:
    for _ in range(int(seconds / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise TimeoutError("condition not met")


def test_sigkill_loses_nothing_acknowledged(tmp_path: Path) -> None:
    """SIGKILL while the SDK sends: after a restart every event that got a 202 is in the log exactly
    once, and ``sealtrail verify --url`` passes."""
    data = tmp_path / "data"
    served = start_serve(data)
    gateway = served.tokens["gateway"]
    auditor = create_key(served, "auditor")
    acked: set[str] = set()

    async def scenario() -> Served:
        stop = asyncio.Event()
        sender = asyncio.create_task(_traffic(served.url, gateway, acked, stop, tmp_path / "spool"))
        await _until(lambda: len(acked) >= 2000)
        served.stop(signal.SIGKILL)
        killed_at = len(acked)
        restarted = await asyncio.to_thread(start_serve, data, port=served.port)
        await _until(lambda: len(acked) >= killed_at + 1000)
        stop.set()
        await sender
        return restarted

    restarted = asyncio.run(asyncio.wait_for(scenario(), timeout=120))
    try:
        wait_for_checkpoint(restarted.url, auditor, TENANT, len(acked))
        logged = _logged_event_ids(data / "sealtrail.db")
        assert len(logged) == len(set(logged)), "an event was logged twice"
        assert acked <= set(logged), f"{len(acked - set(logged))} acknowledged events are missing"
        assert "OK:" in _verify(restarted, auditor)
    finally:
        restarted.stop()


@pytest.mark.timeout(200)
def test_demo_exits_0_and_shows_every_section() -> None:
    """``sealtrail demo`` runs the whole story on a temporary directory and ends with a passing verify."""
    done = cli("demo", timeout=170)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    for section in ("Investigation: session", "Analytics: tools", "Drift:", "call_rate", "definition changed",
                    "Reveal with a purpose", "access event written before the answer", "Subject erasure",
                    "erasure-receipt/v1", "receipt signature checked", "MCP gateway: real MCP calls",
                    "rate limited", "found in the ledger", "Full verification", "OK: "):
        assert section in out, section


def _without_settings(*args: str) -> subprocess.CompletedProcess[str]:
    """``sealtrail ARGS`` with no SEALTRAIL_* variable set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEALTRAIL_")}
    return subprocess.run([sys.executable, "-m", "sealtrail.cli.main", *args], capture_output=True, text=True,
                          timeout=60, env=env, check=False)


@pytest.mark.parametrize("service", ["ingest", "query"])
def test_a_service_missing_its_settings_exits_1_with_the_reason_on_one_line(service: str) -> None:
    """No receipt or service key: `sealtrail ingest|query` ends with `error: <reason>`, no traceback, exit 1."""
    done = _without_settings(service, "--port", str(free_port()))
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and "startup failed" not in done.stderr
    assert done.stderr.splitlines()[-1].startswith("error: no ") and "SEALTRAIL_SERVICE_KEY_FILE" in done.stderr


def test_a_failed_ledger_exits_1_not_by_a_signal() -> None:
    """The ledger's worker fails at once without a database: its reason is logged and the exit status is 1."""
    done = _without_settings("ledger", "--port", str(free_port()))
    assert done.returncode == 1, done.stderr
    assert "SEALTRAIL_DATABASE_URL is not set" in done.stderr and "Traceback" not in done.stderr
