"""Load and checks for the crash tests of ``sealtrail serve``: 64 connections posting one event per
request until the server is SIGKILLed, and the check that every acknowledged event is in the log
exactly once and the log verifies."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time

import orjson

from sealtrail.audit.client import LogClient, http_client
from sealtrail.cli.benchload import Connection
from tests.support.serve import TENANT, Served, cli, serve_event

CONNECTIONS = 64


async def load_singles(served: Served, token: str, acked: list[str], stop: asyncio.Event) -> int:
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


async def load_then_kill(served: Served, token: str, acked: list[str], seconds: float) -> int:
    """Post as :func:`load_singles` does for ``seconds``, then SIGKILL the server mid-load."""
    stop = asyncio.Event()
    load = asyncio.create_task(load_singles(served, token, acked, stop))
    await asyncio.sleep(seconds)
    served.proc.send_signal(signal.SIGKILL)  # with requests in flight, mid-group
    served.proc.wait(timeout=30)
    stop.set()
    return await load


async def logged_ids(url: str, auditor: str) -> list[str]:
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


async def every_acked_logged_once(served: Served, auditor: str, acked: list[str], sent: int) -> None:
    """Every acknowledged id is in the log exactly once (waiting up to 120 s for the restarted
    ledger to sequence what the local log holds), and ``sealtrail verify`` accepts the log."""
    deadline = time.monotonic() + 120
    while True:
        logged = await logged_ids(served.url, auditor)
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
