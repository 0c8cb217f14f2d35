"""``sealtrail serve``'s app in this process: while the ledger lags, POST /v1/events is a 429 and
nothing is lost. The ledger is held back by a second connection holding SQLite's write lock (as a
CLI command writing to the same file would), so the backlog is deterministic."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
from starlette.applications import Starlette

from sealtrail.cli.embedded.app import EmbeddedOptions, create_app
from sealtrail.cli.embedded.datadir import DataDir, initialise
from sealtrail.sdk import events
from sealtrail.sdk.backoff import Backoff
from sealtrail.sdk.client import Accepted, SealtrailClient
from tests.support.embedded import read_rows

BOUND = 40


def _event(i: int, subjects: list[str] | None = None) -> dict[str, Any]:
    return events.tool_call(agent_id="agent-bp", server_id="crm", tool_name="lookup", tool_tier="read",
                            decision="allow", status="ok", payload={"n": i}, subjects=subjects)


def _subject_keys(db: Path) -> int:
    return int(read_rows(db, "SELECT count(*) FROM data_keys WHERE kind = 'subject'")[0][0])


@contextlib.asynccontextmanager
async def _served(root: Path) -> AsyncIterator[tuple[httpx.AsyncClient, str, DataDir, Starlette]]:
    data = DataDir(root / "data")
    first = await initialise(data)
    assert first is not None
    app = create_app(data, options=EmbeddedOptions(max_backlog=BOUND, backpressure_max_wait_s=0.2,
                                                   checkpoint_interval_s=0.1,
                                                   projector_poll_s=0.05))
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://serve") as client:
        yield client, first.tokens["gateway"].token, data, app


@contextlib.contextmanager
def _write_locked(db: Path) -> Iterator[None]:
    """Hold SQLite's write lock from another connection: the ledger's commits wait for it."""
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        yield
        conn.execute("ROLLBACK")
    finally:
        conn.close()


async def _post(client: httpx.AsyncClient, token: str, batch: list[dict[str, Any]]) -> httpx.Response:
    return await client.post("/v1/events", content=orjson.dumps({"events": batch}),
                             headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})


async def _backlog(client: httpx.AsyncClient) -> int:
    text = (await client.get("/metrics")).text
    line = next(x for x in text.splitlines() if x.startswith("sealtrail_embedded_ledger_backlog "))
    return int(float(line.split()[1]))


async def _until(check: Callable[[], Any], within_s: float = 20) -> None:
    deadline = time.monotonic() + within_s
    while not await check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def _logged(db: Path) -> list[str]:
    return [r[0] for r in read_rows(db, "SELECT event_id FROM entries WHERE log_id = 'default'")]


def test_a_lagging_ledger_turns_new_batches_into_429s_and_loses_nothing(tmp_path: Path) -> None:
    """Over the bound: 429 problem with Retry-After before the batch is sealed (nothing appended, no
    key made for its new subject); the backlog is a metric; once the ledger catches up the same
    events are accepted, and every 202'd event is logged once."""

    async def scenario() -> None:
        async with _served(tmp_path) as (client, token, data, _):
            warm = [_event(i) for i in range(5)]  # creates the period key before the lock is taken
            assert (await _post(client, token, warm)).status_code == 202
            await _until(lambda: _zero(client))
            held = [_event(100 + i) for i in range(BOUND + 10)]
            refused = [_event(200 + i, subjects=["email:new@example.com"]) for i in range(10)]
            with _write_locked(data.db):
                assert (await _post(client, token, held)).status_code == 202  # the backlog was 0
                assert await _backlog(client) == len(held)
                answer = await _post(client, token, refused)
                assert answer.status_code == 429, answer.text
                assert answer.headers["Retry-After"] == "1"
                assert answer.headers["content-type"] == "application/problem+json"
                assert answer.json()["type"].endswith("/backpressure")
                assert await _backlog(client) == len(held), "a refused batch was appended"
                assert _subject_keys(data.db) == 0, "a refused batch was sealed"
                metrics = (await client.get("/metrics")).text
                assert "sealtrail_embedded_throttled_batches_total" in metrics
                assert "sealtrail_ledger_entries_total" in metrics and "sealtrail_ingest" in metrics
            await _until(lambda: _zero(client))
            assert (await _post(client, token, refused)).status_code == 202
            assert _subject_keys(data.db) == 1
            await _until(lambda: _zero(client))
            expected = {e["event_id"] for e in warm + held + refused}
            logged = _logged(data.db)
            assert len(logged) == len(set(logged)) == len(expected)
            assert set(logged) == expected

    asyncio.run(asyncio.wait_for(scenario(), timeout=90))


async def _zero(client: httpx.AsyncClient) -> bool:
    return await _backlog(client) == 0


def test_the_sdk_rides_out_429s_and_delivers_every_event_exactly_once(tmp_path: Path) -> None:
    """An SDK client sending while the ledger is held back meets 429s, backs off on Retry-After, and
    in the end every event it sent is in the log exactly once."""

    async def scenario() -> None:
        async with _served(tmp_path) as (client, token, data, app):
            assert (await _post(client, token, [_event(-1)])).status_code == 202
            await _until(lambda: _zero(client))
            sent = [_event(i) for i in range(600)]
            accepted: list[Accepted] = []
            transport = httpx.ASGITransport(app=app)
            sdk = SealtrailClient("http://serve", token, batch_max=50, flush_interval_s=0.01, attempts=50,
                                  backoff=Backoff(base_s=0.05, cap_s=1.0), on_accepted=accepted.extend,
                                  transport=transport)
            async with sdk:
                with _write_locked(data.db):
                    for e in sent:
                        await sdk.send(e)
                    await _until(lambda: _saw_429(sdk), within_s=30)
            assert sdk.stats.retries > 0
            await _until(lambda: _zero(client))
            logged = _logged(data.db)
            assert len(logged) == len(set(logged)), "an event was logged twice"
            assert {e["event_id"] for e in sent} <= set(logged)
            assert {a.event_id for a in accepted} == {e["event_id"] for e in sent}

    asyncio.run(asyncio.wait_for(scenario(), timeout=120))


async def _saw_429(sdk: SealtrailClient) -> bool:
    return sdk.stats.last_status == 429
