"""``sealtrail serve`` SIGKILLed under 64 connections posting one event per request: group commit
keeps ingest's promise. Every event answered 202 is in the log exactly once after restarts, no
event is logged twice, and ``sealtrail verify`` accepts the log."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from pathlib import Path

import orjson

from sealtrail.audit.client import LogClient, http_client
from sealtrail.cli.benchload import Connection
from tests.support.serve import TENANT, Served, cli, create_key, serve_event, start_serve

CONNECTIONS = 64
KILLS = 3


async def _load(served: Served, token: str, acked: list[str], stop: asyncio.Event) -> int:
    """64 connections POST one event each, back to back, until ``stop`` or the server is gone;
    the ids of the 202 answers go to ``acked``. Returns the number of requests sent."""
    sent = 0

    async def worker(n: int) -> None:
        nonlocal sent
        conn = Connection("127.0.0.1", served.port, token)
        try:
            while not stop.is_set():
                e = serve_event(sent, agent=f"agent-{n}")
                sent += 1
                status, _, answer = await conn.post(orjson.dumps({"events": [e]}))
                if status == 202:
                    (accepted,) = orjson.loads(answer)["accepted"]
                    assert accepted["event_id"] == e["event_id"]
                    acked.append(accepted["event_id"])
                else:
                    assert status == 429, (status, answer[:300])
                    await asyncio.sleep(0.2)
        except (OSError, asyncio.IncompleteReadError):
            pass  # the server was killed mid-request: this request is not acknowledged
        finally:
            with contextlib.suppress(OSError):
                await conn.close()

    await asyncio.gather(*(worker(n) for n in range(CONNECTIONS)))
    return sent


async def _load_then_kill(served: Served, token: str, acked: list[str], seconds: float) -> int:
    stop = asyncio.Event()
    load = asyncio.create_task(_load(served, token, acked, stop))
    await asyncio.sleep(seconds)
    served.proc.send_signal(signal.SIGKILL)  # with requests in flight, mid-group
    served.proc.wait(timeout=30)
    stop.set()
    return await load


async def _logged_ids(url: str, auditor: str) -> list[str]:
    """Every event id in the log, once the signed checkpoint covers the whole log."""
    async with http_client(url, auditor) as http:
        deadline = time.monotonic() + 120
        while True:
            size = next(int(x["size"]) for x in (await http.get("/v1/logs")).json()["logs"] if x["log"] == TENANT)
            cp = await http.get(f"/v1/logs/{TENANT}/checkpoint")
            if cp.status_code == 200 and int(cp.text.splitlines()[1]) >= size > 0:
                break
            assert time.monotonic() < deadline, f"no signed checkpoint covers the log's {size} entries"
            await asyncio.sleep(0.2)
        client = LogClient(http, TENANT)
        ids = []
        for first in range(0, size, 1000):
            ids += [orjson.loads(e.entry)["event_id"] for e in await client.entries(first, min(first + 1000, size))]
        return ids


async def test_sigkill_under_single_event_load_loses_and_repeats_nothing(tmp_path: Path) -> None:
    """Three times: 64 connections post one event per request for a few seconds and the server is
    SIGKILLed mid-load, then restarted on the same data directory. Afterwards every acknowledged
    event is in the log exactly once, no event id appears twice, many requests were acknowledged
    (so groups held several batches while being killed), and verify passes."""
    data = tmp_path / "data"
    served = start_serve(data)
    gateway = served.tokens["gateway"]
    auditor = create_key(served, "auditor")
    acked: list[str] = []
    sent = 0
    for kill in range(KILLS):
        sent += await _load_then_kill(served, gateway, acked, seconds=2.0 + kill)
        served = start_serve(data)
    try:
        assert len(acked) >= 200, f"only {len(acked)} of {sent} requests were acknowledged"
        assert len(set(acked)) == len(acked)
        deadline = time.monotonic() + 120
        while True:  # the restarted ledger may still be sequencing what the local log holds
            logged = await _logged_ids(served.url, auditor)
            missing = set(acked) - set(logged)
            if not missing or time.monotonic() > deadline:
                break
            await asyncio.sleep(1)
        assert len(set(logged)) == len(logged), "an event was logged twice"
        assert not missing, f"{len(missing)} acknowledged events are not in the log"
        assert len(logged) <= sent
        done = await asyncio.to_thread(cli, "verify", "--url", served.url, "--log", TENANT, "--token", auditor,
                                       timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
    finally:
        served.stop()
