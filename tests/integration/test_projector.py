"""The projector on real PostgreSQL (and once behind the real ledger on Kafka): what it derives,
exactly once across crashes, and a rebuild that reproduces the incremental read models."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest

from sealtrail.core.record import SealedRecord
from sealtrail.devstack import PostgresServer
from sealtrail.devstack._proc import free_port
from sealtrail.infra.postgres import migrate_url
from services.projector import postgres as projector_writes
from services.projector.postgres import PostgresProjectorStore
from services.projector.projector import Projector, rebuild_equals_incremental
from tests.integration.test_ledger import ledger_settings, running
from tests.support.analytics import append, call, def_hash, rate_limit, subject_key, tool_list
from tests.support.ledger import produce, tenant_pool, wait_for_checkpoint
from tests.support.servers import remove_datadir, server_datadir

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)


@pytest.fixture
async def pool(fresh_db_url: str) -> AsyncIterator[asyncpg.Pool]:
    async with tenant_pool(fresh_db_url, "acme", "beta") as p:
        yield p


def mixed(tenant: str, n: int, *, seed: int = 7, keys: list[str] | None = None) -> list[SealedRecord]:
    """``n`` records over three days, out of time order, of every type the projector reads."""
    rnd = random.Random(seed)
    out: list[SealedRecord] = []
    for i in range(n):
        at = T0 + timedelta(minutes=rnd.randrange(3 * 24 * 60), microseconds=rnd.randrange(10**6))
        roll = rnd.random()
        if roll < 0.03:
            version = rnd.choice("ab")
            out.append(tool_list(tenant, at, server=rnd.choice(["srv-db", "srv-web"]),
                                 tools={"db.query": def_hash("q" + version), "db.write": def_hash("w")}))
        elif roll < 0.06:
            out.append(rate_limit(tenant, at, limit_id="per-agent", observed=100 + i % 50))
        else:
            out.append(call(
                tenant, at, tool=rnd.choice(["db.query", "db.write", "web.get"]),
                agent=rnd.choice(["agent-1", "agent-2", "agent-3"]), session=f"s-{rnd.randrange(40)}",
                decision=rnd.choice(["allow"] * 8 + ["deny", "step_up"]),
                status=rnd.choice(["ok"] * 8 + ["error", "timeout"]), latency_ms=rnd.randrange(1, 5000),
                cost_micros=rnd.choice([None, 150]), def_hash=rnd.choice([None, def_hash("qa"), def_hash("qb")]),
                key_ids=[rnd.choice(keys)] if keys and rnd.random() < 0.3 else ()))
    return out


async def test_read_models_hold_what_the_entries_say(pool: asyncpg.Pool) -> None:
    """A hand-made log gives the expected rollup, session, usage, tool-history and rate-limit rows."""
    h1, h2 = def_hash("v1"), def_hash("v2")
    await append(pool, "acme", [
        tool_list("acme", T0, server="srv-db", tools={"db.query": h1}),
        call("acme", T0 + timedelta(minutes=1), latency_ms=10, cost_micros=100, def_hash=h1),
        call("acme", T0 + timedelta(minutes=2), latency_ms=30, cost_micros=300, def_hash=h1),
        call("acme", T0 + timedelta(minutes=3), decision="deny", status="denied", latency_ms=None),
        tool_list("acme", T0 + timedelta(hours=1), server="srv-db", tools={"db.query": h2, "db.new": h1}),
        rate_limit("acme", T0 + timedelta(hours=1), limit_id="l1", observed=120),
        call("acme", T0 - timedelta(hours=5), agent="agent-2", session="s-1", status="error"),
    ])
    await Projector(store=PostgresProjectorStore(pool=pool)).catch_up()
    ok = await pool.fetchrow("SELECT * FROM rollup_hourly WHERE status = 'ok'")
    assert (ok["bucket"], ok["calls"], ok["latency_n"], ok["latency_sum"], ok["cost_micros"], ok["currency"]) == (
        T0, 2, 2, 40, 400, "USD")
    assert sum(ok["latency_hist"]) == 2
    assert ok["errors"] == 0
    assert await pool.fetchval("SELECT sum(errors) FROM rollup_hourly") == 1
    for table in ("rollup_tool_daily", "rollup_agent_daily", "rollup_tool_hourly", "rollup_agent_hourly"):
        sums = await pool.fetchrow(f"SELECT sum(calls) c, sum(ok) o, sum(errors) e, sum(executed) x,"
                                   f" sum(denied) d, sum(cost_micros) m FROM {table}")
        assert tuple(sums) == (4, 2, 1, 3, 1, 400), table
    s = await pool.fetchrow("SELECT * FROM sessions WHERE session_id = 's-1'")
    assert (s["agent_id"], s["events"], s["calls"], s["errors"], s["denials"]) == ("agent-1", 4, 4, 1, 1)
    assert s["first_at"] == T0 - timedelta(hours=5)
    u = await pool.fetchrow("SELECT * FROM tool_usage WHERE agent_id = 'agent-1'")
    assert (u["calls"], u["def_hash"], u["first_idx"]) == (3, h1, 1)
    changes = await pool.fetch("SELECT change, tool_name FROM tool_definition_changes ORDER BY idx, tool_name")
    assert [(c["change"], c["tool_name"]) for c in changes] == [
        ("added", "db.query"), ("added", "db.new"), ("changed", "db.query")]
    current = await pool.fetch("SELECT tool_name, def_hash FROM server_tools ORDER BY tool_name")
    assert [(r["tool_name"], r["def_hash"]) for r in current] == [("db.new", h1), ("db.query", h2)]
    rl = await pool.fetchrow("SELECT * FROM rollup_rate_limits")
    assert (rl["limit_id"], rl["events"], rl["max_observed"], rl["scope"]) == ("l1", 1, 120, "agent")
    assert await pool.fetchval("SELECT next_idx FROM projector_progress WHERE log_id = 'acme'") == 7


async def test_subject_index_maps_active_subject_keys(pool: asyncpg.Pool) -> None:
    """Entries sealed with an active subject key are indexed under its subject_ref; erased keys and
    period keys are not."""
    alive, ref = await subject_key(pool, "acme")
    gone, _ = await subject_key(pool, "acme")
    await pool.execute("UPDATE data_keys SET state = 'erased', wrapped = NULL, kek_id = NULL,"
                       " subject_ref = NULL, erased_at = now() WHERE key_id = $1", gone)
    await append(pool, "acme", [call("acme", T0, key_ids=[alive]), call("acme", T0, key_ids=[gone]),
                                call("acme", T0, key_ids=[alive, gone]), call("acme", T0)])
    await Projector(store=PostgresProjectorStore(pool=pool)).catch_up()
    rows = await pool.fetch("SELECT * FROM subject_index ORDER BY idx")
    assert [(r["idx"], r["key_id"], bytes(r["subject_ref"])) for r in rows] == [(0, alive, ref), (2, alive, ref)]
    assert all(r["tenant_id"] == "acme" for r in rows)


async def test_rebuild_equals_incremental_projection(pool: asyncpg.Pool) -> None:
    """Projecting in small odd-sized batches, across two logs, then rebuilding in large batches
    gives byte-identical read models (digests of every table)."""
    keys = [(await subject_key(pool, "acme"))[0] for _ in range(5)]
    await append(pool, "acme", mixed("acme", 1500, keys=keys))
    await append(pool, "beta", mixed("beta", 300, seed=8))
    store = PostgresProjectorStore(pool=pool)
    assert await Projector(store=store, batch_entries=37).catch_up() == 1800
    await append(pool, "acme", mixed("acme", 200, seed=9, keys=keys))
    assert await Projector(store=store, batch_entries=61).catch_up() == 200
    check = await rebuild_equals_incremental(store)
    assert check.equal, check.differing
    assert check.positions == {"acme": 1700, "beta": 300}
    assert await pool.fetchval("SELECT count(*) FROM subject_index") > 0
    assert await pool.fetchval("SELECT count(*) FROM tool_definition_changes") > 0


async def test_a_failed_batch_leaves_nothing_and_resumes_exactly_once(
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure after a batch's rows were written but before its commit rolls everything back;
    the next run projects each entry exactly once (counts match, rebuild matches)."""
    records = mixed("acme", 2000)
    await append(pool, "acme", records)
    real, calls = projector_writes.write_subjects, 0

    async def failing(*args: object, **kwargs: object) -> int:
        nonlocal calls
        calls += 1
        if calls == 4:
            raise ConnectionResetError("simulated crash inside the batch transaction")
        return await real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(projector_writes, "write_subjects", failing)
    store = PostgresProjectorStore(pool=pool)
    with pytest.raises(Exception, match="unavailable"):
        await Projector(store=store, batch_entries=300).catch_up()
    assert await pool.fetchval("SELECT next_idx FROM projector_progress") == 900
    assert await pool.fetchval("SELECT sum(calls) FROM rollup_hourly") == await pool.fetchval(
        "SELECT count(*) FROM entries WHERE type = 'tool_call' AND idx < 900")
    await Projector(store=store, batch_entries=300).catch_up()
    assert await pool.fetchval("SELECT sum(calls) FROM rollup_hourly") == sum(
        r.header["type"] == "tool_call" for r in records)
    assert (await rebuild_equals_incremental(store)).equal


async def _get(port: int, path: str) -> httpx.Response:
    """GET from the projector's HTTP endpoint, which may still be binding its socket."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        for _ in range(100):
            try:
                return await http.get(path)
            except httpx.ConnectError:
                await asyncio.sleep(0.05)
    raise AssertionError(f"nothing listens on port {port}")


async def _run(*cmd: str, env: dict[str, str]) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(*cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=120)
    return proc.returncode or 0, out.decode()


async def test_sigkilled_projector_process_resumes(fresh_db_url: str, pool: asyncpg.Pool, tmp_path: Path) -> None:
    """``sealtrail projector`` serves /readyz and /metrics while it works; SIGKILLed mid-way and
    started again with ``--once`` it ends with the same read models as a rebuild; ``--rebuild
    --once`` replays from index 0."""
    await append(pool, "acme", mixed("acme", 30_000))
    env = {**os.environ, "SEALTRAIL_DATABASE_URL": fresh_db_url, "SEALTRAIL_LOG_LEVEL": "WARNING"}
    port = free_port()
    cmd = [sys.executable, "-m", "sealtrail.cli.main", "projector", "--batch-entries", "500"]
    proc = await asyncio.create_subprocess_exec(*cmd, "--port", str(port), env=env, stdout=subprocess.DEVNULL,
                                                stderr=subprocess.DEVNULL)
    try:
        for _ in range(1500):
            done = await pool.fetchval("SELECT next_idx FROM projector_progress") or 0
            if done >= 2000:
                break
            await asyncio.sleep(0.02)
        ready, metrics = await _get(port, "/readyz"), await _get(port, "/metrics")
        proc.send_signal(signal.SIGKILL)
    finally:
        await asyncio.wait_for(proc.wait(), timeout=10)
    assert 0 < done < 30_000
    assert ready.status_code == 200 and ready.json() == {"ready": True, "database": True}
    assert 'sealtrail_projector_entries_total{log="acme"}' in metrics.text
    assert (await _run(*cmd, "--once", env=env))[0] == 0
    assert await pool.fetchval("SELECT next_idx FROM projector_progress") == 30_000
    store = PostgresProjectorStore(pool=pool)
    before = await store.digest()
    code, out = await _run(*cmd, "--rebuild", "--once", env=env)
    assert code == 0, out
    assert "projected 30000 entries" in out
    assert await store.digest() == before


async def _until(predicate: Callable[[], Awaitable[bool]], what: str, within_s: float = 60) -> None:
    for _ in range(int(within_s / 0.05)):
        if await predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {within_s:.0f} s: {what}")


async def test_projector_process_rides_out_a_database_outage(tmp_path: Path) -> None:
    """PostgreSQL stops under a running ``sealtrail projector``: /readyz turns 503 naming the
    database, the process stays up and retries, and once the server is back it projects what was
    appended meanwhile, each entry once (the read models equal a rebuild)."""
    pg = PostgresServer(datadir=server_datadir("projector-outage"))
    proc: asyncio.subprocess.Process | None = None
    try:
        pg.start()
        async with tenant_pool(pg.url, "acme") as p:
            await append(p, "acme", mixed("acme", 2000))
        env = {**os.environ, "SEALTRAIL_DATABASE_URL": pg.url, "SEALTRAIL_LOG_LEVEL": "WARNING"}
        port = free_port()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "sealtrail.cli.main", "projector", "--port", str(port), env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        async def projected(n: int) -> bool:
            async with tenant_pool(pg.url) as p:
                return await p.fetchval("SELECT next_idx FROM projector_progress") == n

        async def readiness(status: int) -> bool:
            return (await _get(port, "/readyz")).status_code == status

        await _until(lambda: projected(2000), "the first 2,000 entries projected")
        await asyncio.to_thread(pg.stop)
        await _until(lambda: readiness(503), "/readyz 503 while PostgreSQL is down")
        assert (await _get(port, "/readyz")).json() == {"ready": False, "database": False}
        assert "sealtrail_projector_database_unavailable 1.0" in (await _get(port, "/metrics")).text
        await asyncio.sleep(2)  # a few failed attempts
        assert proc.returncode is None
        await asyncio.to_thread(pg.start)
        async with tenant_pool(pg.url) as p:
            await append(p, "acme", mixed("acme", 1000, seed=8))
        await _until(lambda: projected(3000), "the 1,000 entries appended after the outage projected")
        await _until(lambda: readiness(200), "/readyz 200 again")
        assert proc.returncode is None
        async with tenant_pool(pg.url) as p:
            assert (await rebuild_equals_incremental(PostgresProjectorStore(pool=p))).equal
    finally:
        if proc is not None and proc.returncode is None:
            proc.kill()
            await proc.wait()
        pg.stop()
        remove_datadir(pg.datadir)


async def test_projects_what_the_ledger_wrote_from_kafka(
    fresh_db_url: str, pool: asyncpg.Pool, kafka_bootstrap: str, topic_name: str, tmp_path: Path
) -> None:
    """Records produced to Kafka, sequenced by the real ledger, are projected: every tool call is
    counted once per tenant, and progress reaches each log's size."""
    await migrate_url(fresh_db_url)
    now = datetime.now(UTC)
    acme = [call("acme", now - timedelta(minutes=i), tool=f"t{i % 3}") for i in range(120)]
    beta = [call("beta", now, agent="agent-b") for _ in range(30)] + [
        tool_list("beta", now, server="srv-db", tools={"db.query": def_hash("x")})]
    settings = ledger_settings(fresh_db_url, kafka_bootstrap, topic_name, tmp_path / "keys")
    async with running(settings):
        await produce(kafka_bootstrap, topic_name, acme + beta)
        await wait_for_checkpoint(fresh_db_url, {"acme": 120, "beta": 31})
        await Projector(store=PostgresProjectorStore(pool=pool), batch_entries=50).catch_up()
    rows = await pool.fetch("SELECT tenant_id, sum(calls) AS n FROM rollup_hourly GROUP BY 1 ORDER BY 1")
    assert [(r["tenant_id"], r["n"]) for r in rows] == [("acme", 120), ("beta", 30)]
    progress = await pool.fetch("SELECT log_id, next_idx FROM projector_progress ORDER BY log_id")
    assert [(r["log_id"], r["next_idx"]) for r in progress] == [("acme", 120), ("beta", 31)]
    assert await pool.fetchval("SELECT count(*) FROM server_tools WHERE tenant_id = 'beta'") == 1
