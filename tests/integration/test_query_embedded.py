"""The whole query app over SQLite and the local log, built the way the embedded default builds
it (services/query/stores.py): investigations, analytics, holds, erasure with a receipt, history."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from sealtrail.infra.apikeys import KeyAdmin
from sealtrail.infra.auth import Role
from sealtrail.infra.locallog import LocalLog
from services.projector.projector import Projector
from tests.contract.query_seed import ALICE, Seeded, seed
from tests.support.query_backends import QueryBackend, query_app, sqlite_query_backend

TOPIC = "sealtrail.sealed"


@contextlib.asynccontextmanager
async def embedded(root: Path) -> AsyncIterator[tuple[httpx.AsyncClient, QueryBackend, Seeded, LocalLog]]:
    async with sqlite_query_backend(root / "sealtrail.db") as backend:
        seeded = await seed(backend)
        await Projector(store=backend.projector).catch_up()
        async with query_app(backend, root) as (client, log):
            yield client, backend, seeded, log


async def _token(backend: QueryBackend, role: Role) -> dict[str, str]:
    key = await KeyAdmin(store=backend.stores.auth).create_key(tenant="acme", role=role, label="t")
    return {"Authorization": f"Bearer {key.token}"}


async def test_query_app_runs_on_sqlite(tmp_path: Path) -> None:
    """Over SQLite stores the app is ready, searches and pages calls, follows a session, reports
    analytics, refuses an erasure under hold, erases after the hold is cleared (payloads gone,
    erasure event in the local log) and lists the erasure."""
    async with embedded(tmp_path) as (client, backend, seeded, log):
        assert (await client.get("/readyz")).status_code == 200
        inv, dpo = await _token(backend, Role.INVESTIGATOR), await _token(backend, Role.DPO)
        page = (await client.get("/v1/calls", params={"limit": 7}, headers=inv)).json()
        assert len(page["calls"]) == 7 and page["next"]
        rest = (await client.get("/v1/calls", params={"limit": 100, "cursor": page["next"]}, headers=inv)).json()
        assert len(page["calls"]) + len(rest["calls"]) == 20
        session = (await client.get("/v1/sessions/s-2", headers=inv)).json()
        assert session["summary"]["calls"] == 5 and len(session["calls"]) == 5
        tools = await client.get("/v1/analytics/tools", params={"from": "2025-03-03T09:00:00Z",
                                                                "to": "2025-03-03T11:00:00Z"}, headers=inv)
        assert tools.status_code == 200, tools.text
        one = await client.get(f"/v1/calls/{seeded.alice[0]}", headers=inv)
        assert one.status_code == 200 and one.json()["header"]["event_id"] == seeded.alice[0]
        hold = {"subject": ALICE, "reason": "litigation"}
        assert (await client.put("/v1/subjects/hold", json=hold, headers=dpo)).status_code == 200
        erase = {"subject": ALICE, "request_ref": "REQ-1", "legal_basis": "gdpr.art17"}
        assert (await client.post("/v1/subjects/erase", json=erase, headers=dpo)).status_code == 409
        release = {"subject": ALICE, "reason": "litigation.closed"}
        cleared = await client.request("DELETE", "/v1/subjects/hold", json=release, headers=dpo)
        assert cleared.status_code == 204
        done = await client.post("/v1/subjects/erase", json=erase, headers=dpo)
        assert done.status_code == 200, done.text
        assert (done.json()["payloads_deleted"], done.json()["state"]) == (3, "done")
        history = (await client.get("/v1/subjects/erasures", params={"subject": ALICE}, headers=dpo)).json()
        assert [e["request_ref"] for e in history["erasures"]] == ["REQ-1"] and history["hold"] is None
        assert await backend.raw.count("subject_index", "tenant_id = 'acme'") == 1
        assert log.end_offset(TOPIC, 0) == 1  # the erasure event, for the ledger to append


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SEALTRAIL_DATABASE_URL", "SEALTRAIL_KAFKA_BOOTSTRAP", "SEALTRAIL_KEK_FILE"):
        monkeypatch.delenv(name, raising=False)
