"""What an investigator or DPO is shown is bound to the signed entries, on PostgreSQL and SQLite.

An insider with write access to the database changes a stored copy (a header column of
``entries``, the entry bytes, a session row, a subject-index row, the tenant column) without
touching what the log signs. Every answer of the query API names the inconsistent index, withholds
rows that only a changed copy put into the answer, and counts it in a metric."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sealtrail.infra.apikeys import KeyAdmin
from sealtrail.infra.auth import Role
from services.projector.projector import Projector
from tests.contract.query_seed import ALICE, Seeded, def_hash, seed
from tests.support.query_backends import QueryBackend, postgres_query_backend, query_app, sqlite_query_backend


@pytest.fixture(params=["postgres", "sqlite"])
async def served(request: pytest.FixtureRequest, tmp_path: Path, fresh_db_url: str
                 ) -> AsyncIterator[tuple[httpx.AsyncClient, QueryBackend, Seeded]]:
    if request.param == "postgres":
        opened = postgres_query_backend(fresh_db_url)
    else:
        opened = sqlite_query_backend(tmp_path / "q.db")
    async with opened as backend:
        seeded = await seed(backend)
        await Projector(store=backend.projector).catch_up()
        async with query_app(backend, tmp_path) as (client, _):
            yield client, backend, seeded


async def _headers(backend: QueryBackend, role: Role, tenant: str = "acme") -> dict[str, str]:
    key = await KeyAdmin(store=backend.stores.auth).create_key(tenant=tenant, role=role, label="t")
    return {"Authorization": f"Bearer {key.token}"}


def _metric(text: str, route: str, withheld: str) -> float:
    pattern = rf'sealtrail_query_integrity_disagreements_total{{route="{route}",withheld="{withheld}"}} (\S+)'
    m = re.search(pattern, text)
    return float(m.group(1)) if m else 0.0


async def test_untouched_rows_carry_index_and_leaf_and_no_flags(
        served: tuple[httpx.AsyncClient, QueryBackend, Seeded]) -> None:
    """With nothing changed, every row has its index and a leaf hash, and nothing is inconsistent."""
    client, backend, _ = served
    inv = await _headers(backend, Role.INVESTIGATOR)
    page = (await client.get("/v1/calls", params={"type": "all", "limit": 100}, headers=inv)).json()
    assert len(page["calls"]) == 24 and page["inconsistent"] == []
    assert all(len(c["leaf_hash"]) == 44 and "inconsistent" not in c for c in page["calls"])
    session = (await client.get("/v1/sessions/s-2", headers=inv)).json()
    assert session["summary_checked"] is True and "summary_inconsistent" not in session


async def test_a_changed_agent_column_is_named_and_never_listed_under_it(
        served: tuple[httpx.AsyncClient, QueryBackend, Seeded]) -> None:
    """UPDATE entries SET agent_id = 'innocent' WHERE idx = 5: the search by the changed value shows
    no call and names index 5; unfiltered answers show the signed agent and flag the row; a metric counts it."""
    client, backend, seeded = served
    assert await backend.raw.tamper("UPDATE entries SET agent_id = 'innocent' WHERE log_id = 'acme' AND idx = 5") == 1
    inv = await _headers(backend, Role.INVESTIGATOR)
    found = (await client.get("/v1/calls", params={"agent": "innocent"}, headers=inv)).json()
    assert found["calls"] == []
    assert found["inconsistent"] == [{"log": "acme", "index": 5, "fields": ["agent_id"], "withheld": True}]
    everything = (await client.get("/v1/calls", params={"limit": 100}, headers=inv)).json()
    (row,) = [c for c in everything["calls"] if c["index"] == 5]
    assert row["header"]["agent_id"] == "agent-1" and row["inconsistent"] == ["agent_id"]
    assert everything["inconsistent"] == [{"log": "acme", "index": 5, "fields": ["agent_id"], "withheld": False}]
    one = (await client.get(f"/v1/calls/{seeded.event_ids('acme')[5]}", headers=inv)).json()
    assert one["header"]["agent_id"] == "agent-1" and one["inconsistent"] == ["agent_id"]
    metrics = (await client.get("/metrics")).text
    assert _metric(metrics, "calls", "true") == 1 and _metric(metrics, "calls", "false") == 1
    assert _metric(metrics, "call", "false") == 1


async def test_changed_entry_bytes_are_withheld_with_an_integrity_problem(
        served: tuple[httpx.AsyncClient, QueryBackend, Seeded]) -> None:
    """Entry bytes that no longer hash to the stored leaf are never shown: the call answers a 500
    `integrity` problem naming log, index and field, and searches withhold the row."""
    client, backend, seeded = served
    changed = ("UPDATE entries SET entry = CAST(replace(CAST(entry AS TEXT), 'agent-1', 'agent-9') AS BLOB)"
               if backend.name == "sqlite" else
               "UPDATE entries SET entry = convert_to(replace(convert_from(entry, 'UTF8'), 'agent-1', 'agent-9'),"
               " 'UTF8')")
    assert await backend.raw.tamper(changed + " WHERE log_id = 'acme' AND idx = 7") == 1
    inv = await _headers(backend, Role.INVESTIGATOR)
    answer = await client.get(f"/v1/calls/{seeded.event_ids('acme')[7]}", headers=inv)
    assert answer.status_code == 500, answer.text
    problem = answer.json()
    assert problem["type"].endswith("/integrity") and (problem["log"], problem["index"]) == ("acme", 7)
    assert "leaf" in problem["fields"] and "agent-9" not in answer.text
    page = (await client.get("/v1/calls", params={"limit": 100}, headers=inv)).json()
    assert 7 not in [c["index"] for c in page["calls"]]
    assert [d["index"] for d in page["inconsistent"] if d["withheld"]] == [7]


async def test_another_tenants_entry_moved_by_its_column_is_withheld(
        served: tuple[httpx.AsyncClient, QueryBackend, Seeded]) -> None:
    """An entry of acme whose tenant column is changed to beta is not shown to beta's investigator."""
    client, backend, seeded = served
    await backend.raw.tamper("UPDATE entries SET tenant_id = 'beta' WHERE log_id = 'acme' AND idx = 3")
    if backend.name == "postgres":  # row-level security reads the tenant from the log's row as well
        await backend.raw.tamper("UPDATE logs SET tenant_id = 'beta' WHERE log_id = 'acme'")
    inv = await _headers(backend, Role.INVESTIGATOR, tenant="beta")
    page = (await client.get("/v1/calls", params={"limit": 100}, headers=inv)).json()
    assert all(c["header"]["tenant"] == "beta" for c in page["calls"])
    assert {"log": "acme", "index": 3} in [{"log": d["log"], "index": d["index"]} for d in page["inconsistent"]]
    answer = await client.get(f"/v1/calls/{seeded.event_ids('acme')[3]}", headers=inv)
    assert answer.status_code in (404, 500) and "db.query" not in answer.text


async def test_a_changed_session_row_is_named(served: tuple[httpx.AsyncClient, QueryBackend, Seeded]) -> None:
    """A sessions read-model row that disagrees with the session's signed entries is flagged."""
    client, backend, _ = served
    assert await backend.raw.tamper("UPDATE sessions SET calls = 99, errors = 3 WHERE session_id = 's-2'") == 1
    inv = await _headers(backend, Role.INVESTIGATOR)
    session = (await client.get("/v1/sessions/s-2", headers=inv)).json()
    assert session["summary_checked"] is True and session["summary_inconsistent"] == ["calls", "errors"]
    assert _metric((await client.get("/metrics")).text, "session-summary", "false") == 1


async def test_a_moved_session_column_is_withheld_from_the_timeline(
        served: tuple[httpx.AsyncClient, QueryBackend, Seeded]) -> None:
    """An entry pulled into another session by its column is withheld from that timeline."""
    client, backend, _ = served
    await backend.raw.tamper("UPDATE entries SET session_id = 's-2' WHERE log_id = 'acme' AND idx = 2")
    inv = await _headers(backend, Role.INVESTIGATOR)
    session = (await client.get("/v1/sessions/s-2", headers=inv)).json()
    assert [c["index"] for c in session["calls"]] == [15, 16, 17, 18, 19]
    assert session["inconsistent"] == [{"log": "acme", "index": 2, "fields": ["session_id"], "withheld": True}]


async def test_a_changed_subject_index_row_exports_nothing_it_does_not_sign(
        served: tuple[httpx.AsyncClient, QueryBackend, Seeded]) -> None:
    """A subject-index row pointed at an entry that the subject's key never sealed is withheld
    from the export and named."""
    client, backend, _ = served
    await backend.raw.tamper("UPDATE subject_index SET idx = 12 WHERE log_id = 'acme' AND idx = 1")
    dpo = await _headers(backend, Role.DPO)
    body: dict[str, Any] = {"subject": ALICE, "purpose": "art15"}
    page = (await client.post("/v1/subjects/export", json=body, headers=dpo)).json()
    assert [e["index"] for e in page["entries"]] == [2, 3]
    assert page["inconsistent"] == [{"log": "acme", "index": 12, "fields": ["subject_index"], "withheld": True}]
    inv = await _headers(backend, Role.INVESTIGATOR)
    found = (await client.get("/v1/calls", params={"subject": ALICE}, headers=inv)).json()
    assert sorted(c["index"] for c in found["calls"]) == [2, 3]
    assert found["inconsistent"] == [{"log": "acme", "index": 12, "fields": ["subject_index"], "withheld": True}]


@pytest.fixture(params=["postgres", "sqlite"])
async def projected(request: pytest.FixtureRequest, tmp_path: Path, fresh_db_url: str
                    ) -> AsyncIterator[tuple[QueryBackend, str]]:
    """Seeded and projected backends, with what `sealtrail admin check-read-models` needs to reach them
    (a database URL, or a data directory)."""
    if request.param == "postgres":
        opened, where = postgres_query_backend(fresh_db_url), fresh_db_url
    else:
        opened, where = sqlite_query_backend(tmp_path / "sealtrail.db"), str(tmp_path)
    async with opened as backend:
        await seed(backend)
        await Projector(store=backend.projector, batch_entries=7).catch_up()
        yield backend, where


def _check_cli(backend: QueryBackend, where: str) -> subprocess.CompletedProcess[str]:
    args = ["admin", "check-read-models", "--json"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEALTRAIL_")}
    if backend.name == "sqlite":
        args += ["--data-dir", where]
    else:
        env["SEALTRAIL_DATABASE_URL"] = where
    return subprocess.run([sys.executable, "-m", "sealtrail.cli.main", *args], capture_output=True, text=True,
                          env=env, timeout=120, check=False)


async def test_check_read_models_passes_on_an_untouched_log(projected: tuple[QueryBackend, str]) -> None:
    """Every entry and every read model agrees with a rebuild: exit 0, and the stored models are untouched."""
    backend, where = projected
    before = await backend.projector.digest()
    done = await asyncio.to_thread(_check_cli, backend, where)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] and report["entries_checked"] == 25 and report["positions"] == {"acme": 24, "beta": 1}
    assert await backend.projector.digest() == before


TAMPERS = [
    ("UPDATE entries SET agent_id = 'innocent' WHERE log_id = 'acme' AND idx = 5", "entries", "5"),
    ("UPDATE sessions SET calls = calls + 1 WHERE session_id = 's-2'", "sessions", "s-2"),
    ("UPDATE rollup_tool_daily SET calls = calls + 40 WHERE tool_name = 'db.old'", "rollup_tool_daily", "db.old"),
    (f"UPDATE tool_definitions SET snapshots = 9 WHERE tool_name = 'db.query' AND def_hash = '{def_hash('v2')}'",
     "tool_definitions", "db.query"),
    ("DELETE FROM subject_index WHERE log_id = 'acme' AND idx = 2", "subject_index", "2"),
]


@pytest.mark.parametrize(("sql", "table", "named"), TAMPERS, ids=[t[1] for t in TAMPERS])
async def test_check_read_models_names_each_changed_copy(projected: tuple[QueryBackend, str], sql: str, table: str,
                                                         named: str) -> None:
    """A changed entry column, session row, rollup, tool-definition row or subject-index row is
    reported by table (or entry index) with the row that differs, and the command exits 1."""
    backend, where = projected
    assert await backend.raw.tamper(sql) == 1
    report = await backend.projector.check(batch_entries=5)
    assert not report.ok
    if table == "entries":
        assert [(e.log_id, e.idx, e.fields) for e in report.entries] == [("acme", 5, ("agent_id",))]
        assert report.models == []
    else:
        assert report.entries == [] and [m.table for m in report.models] == [table]
        assert any(named in x for x in report.models[0].examples), report.models[0].examples
    done = await asyncio.to_thread(_check_cli, backend, where)
    assert done.returncode == 1, done.stderr
    printed = json.loads(done.stdout)
    assert (printed["entries"] if table == "entries" else [m["table"] for m in printed["models"]]) != []
