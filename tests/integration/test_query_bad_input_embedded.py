"""Bad input, wrong methods, the purpose-note header, gateway-scoped proofs and the OpenAPI
document on ``sealtrail serve``'s app in this process (SQLite and the local log): each bad input
is a 400 problem that repeats no submitted value, never a 500 or a silent answer."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from sealtrail.cli.embedded.app import EmbeddedOptions, create_app
from sealtrail.cli.embedded.datadir import DataDir, initialise
from sealtrail.infra.apikeys import KeyAdmin
from sealtrail.infra.auth import Role
from sealtrail.infra.auth_sqlite import SqliteAuthStore
from sealtrail.infra.sqlite import open_database
from sealtrail.sdk import events
from tests.support.embedded import read_rows
from tests.support.query_bad_input import check_cases, check_methods, check_no_echo, check_purpose_note

LOG = "default"
ROLES = (Role.GATEWAY, Role.INVESTIGATOR, Role.AUDITOR, Role.DPO)


@dataclass
class Serve:
    client: httpx.AsyncClient
    tokens: dict[str, str]
    db: Path

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    async def send(self, who: str) -> str:
        call = events.tool_call(agent_id="agent-b", server_id="srv", tool_name="t", tool_tier="read",
                                decision="allow", status="ok", session_id="s-1", payload={"q": 1},
                                subjects=["user:a@example.com"])
        resp = await self.client.post("/v1/events", json={"events": [call]}, headers=self.auth(who))
        assert resp.status_code == 202, resp.text
        event_id = str(call["event_id"])
        deadline = time.monotonic() + 20
        while not read_rows(self.db, "SELECT 1 FROM entries e JOIN checkpoints c ON c.log_id = e.log_id"
                                     " AND c.tree_size > e.idx WHERE e.event_id = ?", (event_id,)):
            assert time.monotonic() < deadline, "event not logged under a checkpoint in time"
            await asyncio.sleep(0.05)
        return event_id


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[Serve]:
    data = DataDir(tmp_path / "data")
    first = await initialise(data, roles=ROLES)
    assert first is not None
    tokens = {role: issued.token for role, issued in first.tokens.items()}
    db = await open_database(data.db)
    try:
        other = await KeyAdmin(store=SqliteAuthStore(db=db)).create_key(tenant=LOG, role=Role.GATEWAY,
                                                                         label="gw-two")
    finally:
        await db.close()
    tokens["gw-two"] = other.token
    app = create_app(data, options=EmbeddedOptions(checkpoint_interval_s=0.1, projector_poll_s=0.05))
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://serve") as client:
        yield Serve(client, tokens, data.db)


async def test_bad_input_is_a_400_problem_on_sqlite(serve: Serve) -> None:
    """Cursors with a null time, an out-of-range index or an overflowing time; times near year 1
    or 9999; sizes past 2^63-1; unknown, repeated and out-of-set parameters; bodies that repeat a
    member or are not JSON: each a 400 with its pointer, repeating nothing submitted."""
    await serve.send("gateway")
    await check_cases(serve.client, serve.auth, LOG)
    await check_no_echo(serve.client, serve.auth, LOG, str(uuid.uuid4()))


async def test_wrong_method_is_405_with_allow(serve: Serve) -> None:
    """On the one port, a wrong method is 405 for the query API's paths and ingest's alike."""
    await check_methods(serve.client, serve.auth)
    resp = await serve.client.get("/v1/events", headers=serve.auth("gateway"))
    assert resp.status_code == 405 and resp.headers["allow"] == "POST", resp.text
    assert resp.headers["content-type"] == "application/problem+json"


async def test_purpose_note_must_be_strict_percent_encoding(serve: Serve) -> None:
    """A stray '%', raw non-ASCII bytes or bad UTF-8 in the note is a 400; a good note reveals."""
    await check_purpose_note(serve.client, serve.auth, await serve.send("gateway"))


async def test_gateway_reads_only_its_own_events_proofs(serve: Serve) -> None:
    """A gateway key gets the tlog-proof of its own events and a 404, as for a missing event, for
    another gateway's; auditors and investigators get both."""
    mine, theirs = await serve.send("gateway"), await serve.send("gw-two")
    missing = await serve.client.get(f"/v1/events/{uuid.uuid4()}/tlog-proof", headers=serve.auth("gateway"))
    for who, event_id, status in (("gateway", mine, 200), ("gateway", theirs, 404), ("gw-two", theirs, 200),
                                  ("gw-two", mine, 404), ("auditor", theirs, 200), ("investigator", mine, 200)):
        resp = await serve.client.get(f"/v1/events/{event_id}/tlog-proof", headers=serve.auth(who))
        assert resp.status_code == status, (who, resp.text)
        if status == 404:
            assert resp.json()["detail"] == missing.json()["detail"]


async def test_openapi_describes_every_route_of_the_port(serve: Serve) -> None:
    """/openapi.json lists ingest's POST /v1/events beside the query API's routes, under one title."""
    doc = (await serve.client.get("/openapi.json")).json()
    assert "post" in doc["paths"]["/v1/events"]
    assert {"/v1/calls", "/v1/analytics/tools", "/v1/subjects/export", "/v1/keys"} <= set(doc["paths"])
    assert "ingest" in doc["info"]["title"] and "query" in doc["info"]["title"]
