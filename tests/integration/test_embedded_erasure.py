"""``sealtrail serve``'s app in this process: ingest and the query API share one key cache, so an
event sent right after a subject's erasure is sealed with a new subject key, never the erased one
(each service's own cache would have kept the erased key for up to its 10 s TTL)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import orjson

from sealtrail.cli.embedded.app import EmbeddedOptions, create_app
from sealtrail.cli.embedded.datadir import DataDir, initialise
from sealtrail.infra.auth import Role
from sealtrail.sdk import events
from tests.support.embedded import read_rows

SUBJECT = "email:alice@example.com"


def _call() -> dict[str, object]:
    return events.tool_call(agent_id="agent-e", server_id="crm", tool_name="lookup", tool_tier="read",
                            decision="allow", status="ok", payload={"q": "alice"}, subjects=[SUBJECT])


def _key_ids(db: Path, event_id: str) -> list[str] | None:
    rows = read_rows(db, "SELECT entry FROM entries WHERE event_id = ?", (event_id,))
    return list(orjson.loads(rows[0][0])["key_ids"]) if rows else None


async def _logged(db: Path, event_id: str, within_s: float = 20) -> list[str]:
    deadline = time.monotonic() + within_s
    while (ids := _key_ids(db, event_id)) is None:
        assert time.monotonic() < deadline, f"event {event_id} not logged in time"
        await asyncio.sleep(0.05)
    return ids


async def test_an_event_right_after_an_erasure_gets_a_new_subject_key(tmp_path: Path) -> None:
    data = DataDir(tmp_path / "data")
    first = await initialise(data, roles=(Role.GATEWAY, Role.DPO))
    assert first is not None
    gateway = {"Authorization": f"Bearer {first.tokens['gateway'].token}"}
    dpo = {"Authorization": f"Bearer {first.tokens['dpo'].token}"}
    app = create_app(data, options=EmbeddedOptions(checkpoint_interval_s=0.1, projector_poll_s=0.05))
    first_call, second_call = _call(), _call()
    before, after = str(first_call["event_id"]), str(second_call["event_id"])
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://serve") as client:
        sent = await client.post("/v1/events", json={"events": [first_call]}, headers=gateway)
        assert sent.status_code == 202, sent.text
        erased_key = (await _logged(data.db, before))[1]  # [period key, subject key]

        erase = {"subject": SUBJECT, "request_ref": "DSR-7", "legal_basis": "gdpr.art17"}
        done = await client.post("/v1/subjects/erase", json=erase, headers=dpo)
        assert done.status_code == 200, done.text
        assert erased_key in done.json()["erased_key_ids"]
        sent = await client.post("/v1/events", json={"events": [second_call]}, headers=gateway)
        assert sent.status_code == 202, sent.text

        period, subject_key = await _logged(data.db, after)
        assert subject_key != erased_key and period == (await _logged(data.db, before))[0]
