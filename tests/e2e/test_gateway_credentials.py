"""Upstream credentials sealed in the state database: a token rotated at a real upstream is caught by
the next health check as "credential rejected", `credential rotate` restores service (and refuses a
value the upstream rejects), every change is in the ledger, and no dump of the state database
(SQLite bytes, pg_dump) holds a secret in clear."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest
from mcp.shared.exceptions import MCPError

from sealtrail.devstack.postgres import find_bindir
from tests.support.authserver import AuthServer
from tests.support.gateway import Setup, agent, wait_events
from tests.support.gwops import auth_upstream, cli_in, docs_setup, operator_key, verify_ledger
from tests.support.serve import Served, cli, start_serve

T1, T2, T3, T4 = ("tok-first-1a2b3c4d5e", "tok-second-6f7a8b9c0d", "tok-wrong-0e1f2a3b4c", "tok-api-5d6e7f8a9b")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    s = start_serve(tmp_path_factory.mktemp("gwc-ledger") / "data")
    yield s
    s.stop()


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[AuthServer]:
    server = auth_upstream(tmp_path, T1)
    yield server
    server.stop()


@pytest.fixture
def setup(served: Served, upstream: AuthServer, tmp_path: Path) -> Iterator[Setup]:
    s = docs_setup(tmp_path / "gw", served, upstream, interval=1, after=2)
    done = cli_in("gateway", "credential", "set", "docs", "--bearer", "--config", str(s.config), secret=T1)
    assert done.returncode == 0, done.stderr
    assert "docs/v1" in done.stdout
    yield s
    s.stop_all()


async def _search(url: str, token: str) -> str:
    async with agent(url, token) as c:
        result = await c.call_tool("docs__search", {"query": "kek"})
        return str(result.content[0].text)  # type: ignore[union-attr]


async def _code(url: str, token: str) -> tuple[int, str]:
    async with agent(url, token) as c:
        try:
            await c.call_tool("docs__search", {"query": "kek"})
        except MCPError as e:
            return e.code, e.message
    return 0, "ok"


async def _until(predicate: Callable[[], Awaitable[bool]], what: str, seconds: float = 20) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


async def test_rotated_upstream_token_is_caught_and_rotate_restores_service(
        setup: Setup, served: Served, upstream: AuthServer) -> None:
    """Calls pass with the stored token; the upstream rotates its token; the on-demand check says
    "credential rejected" (not unreachable); scheduled checks mark the server unhealthy and calls get
    -32008 at once; rotating to a value the upstream rejects is refused and v1 stays current;
    rotating to the new token switches, the running gateway recovers by itself; all recorded."""
    gw = setup.start()
    alice = setup.key("alice")
    assert "3 documents" in await _search(gw.url, alice)

    upstream.set_token(T2)
    done = cli("gateway", "health", "docs", "--config", str(setup.config), "--json")
    assert done.returncode == 1, done.stderr
    check = json.loads(done.stdout)["checks"][0]
    assert check["status"] == "credential_rejected" and "HTTP 401" in check["message"]

    async def refused_as_unhealthy() -> bool:
        code, _ = await _code(gw.url, alice)
        return code == -32008
    await _until(refused_as_unhealthy, "the server to be marked unhealthy")
    code, message = await _code(gw.url, alice)
    assert code == -32008 and "credential rejected" in message

    wrong = cli_in("gateway", "credential", "rotate", "docs", "--config", str(setup.config), secret=T3)
    assert wrong.returncode == 1 and "credential rejected" in wrong.stderr and "docs/v1 stays current" in wrong.stderr
    good = cli_in("gateway", "credential", "rotate", "docs", "--config", str(setup.config), "--json", secret=T2)
    assert good.returncode == 0, good.stderr
    rotated = json.loads(good.stdout)
    assert rotated["credential"]["version"] == 3 and rotated["check"]["status"] == "ok"

    async def served_again() -> bool:
        return (await _code(gw.url, alice))[0] == 0
    await _until(served_again, "calls to pass again after the rotation")

    listed = cli("gateway", "credential", "list", "docs", "--config", str(setup.config), "--json")
    rows = json.loads(listed.stdout)["credentials"]
    assert [(r["version"], r["state"]) for r in rows] == [(1, "retired"), (2, "failed"), (3, "current")]
    assert rows[1]["check_status"] == "credential_rejected" and rows[2]["check_status"] == "ok"
    assert not any(t in listed.stdout for t in (T1, T2, T3))

    rotations = wait_events(served, lambda e: e["type"] == "credential_rotation" and e["server_id"] == "docs", 2)
    assert sorted(e["credential_id"] for e in rotations) == ["docs/v1", "docs/v3"]
    checks = wait_events(served, lambda e: e["type"] == "health_check" and e["server_id"] == "docs", 4)
    assert any(e.get("error_type") == "credential_rejected" and e["status"] == "unhealthy" for e in checks)
    assert any(e.get("error_type") == "credential_rejected" and e["status"] == "degraded" for e in checks)
    assert any(e["status"] == "healthy" and "latency_ms" in e for e in checks)
    refused = wait_events(served, lambda e: e["type"] == "tool_call" and e.get("error_type") == "server_unhealthy", 1)
    assert refused and refused[0]["status"] == "denied"
    verify_ledger(served)
    _no_secret_in(setup.dir, (T1, T2, T3))


async def test_operator_api_sets_lists_and_rotates_without_returning_values(
        setup: Setup, served: Served, upstream: AuthServer) -> None:
    """The admin API: agent keys get 403; list shows no value; a rotation through it switches and
    the gateway's own connection follows at once."""
    gw = setup.start()
    op, alice = operator_key(setup), setup.key("alice")
    async with httpx.AsyncClient(base_url=gw.url, timeout=30) as http:
        denied = await http.get("/v1/credentials", headers={"Authorization": f"Bearer {alice}"})
        assert denied.status_code == 403
        assert (await http.get("/v1/credentials")).status_code == 401
        auth = {"Authorization": f"Bearer {op}"}
        listed = await http.get("/v1/credentials", headers=auth)
        assert listed.status_code == 200 and T1 not in listed.text
        assert [c["credential_id"] for c in listed.json()["credentials"]] == ["docs/v1"]
        bad = await http.put("/v1/credentials/docs", headers=auth, json={"kind": "env", "name": "X", "secret": "s"})
        assert bad.status_code == 400 and "--header NAME or --bearer" in bad.text
        assert "3 documents" in await _search(gw.url, alice)
        upstream.set_token(T4)
        rotated = await http.post("/v1/credentials/docs/rotate", headers=auth, json={"secret": T4})
        assert rotated.status_code == 200, rotated.text
        assert rotated.json()["check"]["status"] == "ok" and T4 not in rotated.text
        assert "3 documents" in await _search(gw.url, alice)
        checked = await http.post("/v1/health/docs", headers=auth)
        assert checked.status_code == 200 and checked.json()["credential_version"] == 2
    events = wait_events(served, lambda e: e["type"] == "credential_rotation" and e["credential_id"] == "docs/v2", 1)
    assert events and events[0]["reason"] == "manual"
    _no_secret_in(setup.dir, (T1, T4))


def _no_secret_in(directory: Path, secrets: tuple[str, ...]) -> None:
    """The SQLite state database's bytes (and its WAL) hold none of the secrets, raw or encoded."""
    dumped = b"".join(p.read_bytes() for p in directory.glob("state.db*"))
    assert dumped, "no state database was found"
    for s in secrets:
        for form in (s.encode(), s.encode("utf-16-le"), s.encode().hex().encode()):
            assert form not in dumped, f"a secret is in the state database in clear ({form[:6]!r}...)"


async def test_pg_dump_of_the_state_database_holds_no_secret(
        served: Served, upstream: AuthServer, tmp_path: Path, fresh_db_url: str) -> None:
    """With PostgreSQL as the state database, `credential set` and `rotate` store sealed values only:
    pg_dump (data and schema) has no secret in clear, and the gateway still opens them."""
    setup = docs_setup(tmp_path / "pg", served, upstream, interval=0, database=fresh_db_url)
    done = cli_in("gateway", "credential", "set", "docs", "--bearer", "--config", str(setup.config), secret=T1)
    assert done.returncode == 0, done.stderr
    upstream.set_token(T2)
    done = cli_in("gateway", "credential", "rotate", "docs", "--config", str(setup.config), secret=T2)
    assert done.returncode == 0, done.stderr
    bindir = find_bindir()
    assert bindir is not None, "the PostgreSQL binaries the test run started its server with are missing"
    dump = await asyncio.to_thread(subprocess.run, [str(bindir / "pg_dump"), "--dbname", fresh_db_url],
                                   capture_output=True, check=False, timeout=60)
    assert dump.returncode == 0, dump.stderr.decode()
    assert b"gateway_credentials" in dump.stdout and b"docs" in dump.stdout
    for s in (T1, T2):
        assert s.encode() not in dump.stdout and s.encode().hex().encode() not in dump.stdout
    health = cli("gateway", "health", "docs", "--config", str(setup.config))
    assert health.returncode == 0, health.stdout + health.stderr
