"""The full stack with witnesses that are not Sealtrail: ingest (sealing, Kafka), the ledger
(Kafka, PostgreSQL) with ``--witness-config`` of litewitness, omniwitness and ``sealtrail witness``
at quorum 2, and the query API on a real port with the same configuration. Every checkpoint the
ledger signs reaches the quorum, the checkpoint list and tlog-proof files say so, and ``sealtrail
verify --url ... --witness x3 --quorum 2`` passes. And the log's rows in PostgreSQL, restored from
an old copy under the running ledger, get its rolled-back, forked and re-signed checkpoints refused
by every witness."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from prometheus_client import REGISTRY

from sealtrail.core.checkpoint import parse_checkpoint
from sealtrail.core.note import Ed25519Signer, parse_note
from sealtrail.core.quorum import WitnessPolicy
from sealtrail.core.sealing import Kek
from sealtrail.core.tlogproof import parse_proof
from sealtrail.core.witnessing import WitnessConfig, WitnessingConfig
from sealtrail.infra.postgres import connect, migrate
from services.ingest import IngestOptions, IngestParts
from services.ingest import create_app as create_ingest
from services.ledger.postgres.checkpoints import PostgresSigningKeys
from services.ledger.service import LedgerService
from services.ledger.signing import rotate
from services.query.app import create_app as create_query
from services.query.config import QueryOptions
from services.query.service import QueryParts
from tests.support.query import call, drop_database, new_database, on_port, provision, stack_settings
from tests.support.serve import cli
from tests.support.thirdparty_witness import (
    LITEWITNESS_NAME,
    OMNIWITNESS_NAME,
    BuildError,
    SshAgent,
    ThirdPartyWitness,
    litewitness_binaries,
    omniwitness_binary,
    three_witnesses,
)
from tests.support.witness import WitnessProcess

TENANT = "witnessed"


@pytest.fixture(scope="module")
def binaries() -> tuple[Path, Path]:
    try:
        return litewitness_binaries(), omniwitness_binary()
    except BuildError as e:
        pytest.fail(str(e))


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[SshAgent]:
    a = SshAgent(tmp_path)
    yield a
    a.stop()


@pytest.fixture
async def db_url(pg_url: str) -> AsyncIterator[str]:
    url = await new_database(pg_url)
    try:
        yield url
    finally:
        await drop_database(pg_url, url)


@contextlib.asynccontextmanager
async def _ledger(service: LedgerService) -> AsyncIterator[None]:
    task = asyncio.create_task(service.run())
    try:
        for _ in range(400):
            if service.ready or task.done():
                break
            await asyncio.sleep(0.05)
        if task.done():
            task.result()
        yield
    finally:
        service.stop()
        await asyncio.wait_for(task, timeout=30)


async def _cosigned_by_all(http: httpx.AsyncClient, policy: WitnessPolicy, size: int, within_s: float = 60) -> str:
    deadline, note = time.monotonic() + within_s, ""
    while time.monotonic() < deadline:
        r = await http.get(f"/v1/logs/{TENANT}/checkpoint")
        if r.status_code == 200:
            note = r.text
            if (parse_checkpoint(parse_note(note).text).size >= size
                    and len(policy.cosigners(note).names) == len(policy.witnesses)):
                return note
        await asyncio.sleep(0.1)
    raise AssertionError(f"no checkpoint of {size} entries cosigned by every witness in {within_s} s:\n{note}")


@dataclass
class _Stack:
    """The running stack: the query API (a client and its URL), a way to send events, the witnesses."""

    db_url: str
    api: httpx.AsyncClient
    query_url: str
    auditor: str
    witnesses: dict[str, ThirdPartyWitness | WitnessProcess]
    policy: WitnessPolicy
    send: Callable[[list[dict[str, Any]]], Awaitable[list[str]]]

    def witness_args(self) -> list[str]:
        return [a for w in self.witnesses.values() for a in ("--witness", w.vkey)]


@contextlib.asynccontextmanager
async def _witnessed_stack(db_url: str, kafka_bootstrap: str, tmp_path: Path, binaries: tuple[Path, Path],
                           agent: SshAgent) -> AsyncIterator[_Stack]:
    kek_hex = os.urandom(32).hex()
    tokens, _ = await provision(db_url, [TENANT], Kek(bytes.fromhex(kek_hex)))
    settings = stack_settings(db_url, kafka_bootstrap, f"witnessed.{uuid.uuid4().hex[:12]}", tmp_path / "keys",
                              kek_hex)
    async with connect(db_url) as conn:
        await migrate(conn)
        keys = await rotate(PostgresSigningKeys(conn), key_dir=settings.signing_key_dir, name=settings.key_name)
    origin = f"{settings.origin_prefix}/{TENANT}"
    witnesses = three_witnesses(*binaries, agent, tmp_path, origin, keys.signer.verifier().vkey())
    try:
        config = WitnessingConfig(tuple(WitnessConfig(n, w.verifier, w.url) for n, w in witnesses.items()), 2,
                                  retry_max_s=2.0)
        policy = WitnessPolicy(tuple(w.verifier for w in config.witnesses), 2)
        query = create_query(settings, options=QueryOptions(auth_cache_ttl_s=0, shred_interval_s=0,
                                                            publish_timeout_s=5, witnesses=policy),
                             parts=QueryParts(signer=Ed25519Signer.generate("test-query")))
        ingest = create_ingest(settings, options=IngestOptions(auth_cache_ttl_s=0, publish_timeout_s=5),
                               parts=IngestParts(signer=Ed25519Signer.generate("test-ingest")))
        auditor = tokens[f"{TENANT}:auditor"]
        async with _ledger(LedgerService(settings, max_records=2000, witnesses=config)), \
                ingest.router.lifespan_context(ingest), query.router.lifespan_context(query), \
                httpx.AsyncClient(transport=httpx.ASGITransport(app=ingest), base_url="http://ingest") as gw, \
                on_port(query) as query_url, \
                httpx.AsyncClient(base_url=query_url, headers={"Authorization": f"Bearer {auditor}"}) as api:

            async def send(events: list[dict[str, Any]]) -> list[str]:
                sent = await gw.post("/v1/events", json={"events": events},
                                     headers={"Authorization": f"Bearer {tokens[f'{TENANT}:gateway']}"})
                assert sent.status_code == 202, sent.text
                return [a["event_id"] for a in sent.json()["accepted"]]

            yield _Stack(db_url, api, query_url, auditor, witnesses, policy, send)
    finally:
        for w in witnesses.values():
            w.stop()


async def test_full_stack_checkpoints_reach_the_quorum(db_url: str, kafka_bootstrap: str, tmp_path: Path,
                                                       binaries: tuple[Path, Path], agent: SshAgent) -> None:
    async with _witnessed_stack(db_url, kafka_bootstrap, tmp_path, binaries, agent) as stack:
        ids: list[str] = []
        for batch in range(4):  # four batches, so several checkpoints
            ids += await stack.send([call(payload={"n": batch * 20 + i}) for i in range(20)])
            await _cosigned_by_all(stack.api, stack.policy, (batch + 1) * 20)
        listed = (await stack.api.get(f"/v1/logs/{TENANT}/checkpoints")).json()["checkpoints"]
        proof = await stack.api.get(f"/v1/events/{ids[5]}/tlog-proof")
        done = await asyncio.to_thread(cli, "verify", "--url", stack.query_url, "--log", TENANT, "--token",
                                       stack.auditor, *stack.witness_args(), "--quorum", "2", timeout=120)
    policy = stack.policy
    assert len(listed) >= 4, listed
    for item in listed:
        assert item["witnesses"]["witnessed"] and len(policy.check(item["note"]).names) >= 2, item
    assert proof.status_code == 200 and proof.headers["Sealtrail-Witness-Quorum"] == "2"
    assert int(proof.headers["Sealtrail-Witness-Cosignatures"]) >= 2
    assert len(policy.check(parse_proof(proof.text).note).names) >= 2
    assert done.returncode == 0, done.stderr
    for name in (LITEWITNESS_NAME, OMNIWITNESS_NAME, "witness.example/w1"):
        assert name in done.stdout, done.stdout


LOG_TABLES = ("entries", "payloads", "tree_nodes", "batches", "checkpoints")


async def _backup(db_url: str) -> None:
    conn = await asyncpg.connect(db_url)
    try:
        for table in (*LOG_TABLES, "logs"):
            await conn.execute(f"CREATE TABLE backup_{table} AS SELECT * FROM {table} WHERE log_id = $1", TENANT)
    finally:
        await conn.close()


async def _restore(db_url: str) -> None:
    """Put the log's rows and head back to the backup's, in one transaction, under the running ledger."""
    conn = await asyncpg.connect(db_url)
    try:
        async with conn.transaction():
            for table in LOG_TABLES:
                await conn.execute(f"DELETE FROM {table} WHERE log_id = $1", TENANT)
                await conn.execute(f"INSERT INTO {table} SELECT * FROM backup_{table}")
            await conn.execute("UPDATE logs l SET size = b.size, root = b.root, chain_head = b.chain_head,"
                               " compact = b.compact FROM backup_logs b WHERE l.log_id = b.log_id")
    finally:
        await conn.close()


def _sample(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_a_tampered_postgresql_ledger_gets_no_cosignature(
        db_url: str, kafka_bootstrap: str, tmp_path: Path, binaries: tuple[Path, Path], agent: SshAgent) -> None:
    """The production ledger: after 61 is witnessed, the log's rows in PostgreSQL are restored to a
    copy taken at 21 while the ledger runs; it then signs a rolled-back (41), a forked (61) and a
    re-signed (81) checkpoint. Every witness refuses each (its failure counter rises by two after
    the checkpoint is signed), the lag gauge stands at its size, and verify --quorum 2 fails naming it."""
    async with _witnessed_stack(db_url, kafka_bootstrap, tmp_path, binaries, agent) as stack:
        await stack.send([call(payload={"n": i}) for i in range(21)])
        await _cosigned_by_all(stack.api, stack.policy, 21)
        await _backup(db_url)
        await stack.send([call(payload={"n": i}) for i in range(21, 61)])
        await _cosigned_by_all(stack.api, stack.policy, 61)
        await _restore(db_url)
        failed: dict[str, str] = {}
        for what, size in (("rollback", 41), ("fork at the same size", 61), ("rewritten history", 81)):
            await stack.send([call(payload={"n": 1000 + size + i}) for i in range(20)])
            await _signed(stack.api, size)
            before = {n: _sample("sealtrail_ledger_witness_failures_total", {"witness": n}) for n in stack.witnesses}
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                now = {n: _sample("sealtrail_ledger_witness_failures_total", {"witness": n}) for n in stack.witnesses}
                lag = _sample("sealtrail_ledger_witness_lag_entries", {"log": TENANT})
                if all(now[n] >= before[n] + 2 for n in now) and lag == size:
                    break
                await asyncio.sleep(0.2)
            assert all(now[n] >= before[n] + 2 for n in now), (what, before, now)
            assert lag == size, (what, lag)
            note = (await stack.api.get(f"/v1/logs/{TENANT}/checkpoint")).text
            assert parse_checkpoint(parse_note(note).text).size == size, what
            assert stack.policy.cosigners(note).names == (), (what, note)
            done = await asyncio.to_thread(cli, "verify", "--url", stack.query_url, "--log", TENANT, "--token",
                                           stack.auditor, *stack.witness_args(), "--quorum", "2", timeout=120)
            assert done.returncode == 1, (what, done.stdout)
            failed[what] = done.stderr
    for what, size in (("rollback", 41), ("fork at the same size", 61), ("rewritten history", 81)):
        assert f"checkpoint at tree size {size} carries 0 of the 2 witness cosignatures" in failed[what], (
            what, failed[what])


async def _signed(api: httpx.AsyncClient, size: int, within_s: float = 60) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        r = await api.get(f"/v1/logs/{TENANT}/checkpoint")
        if r.status_code == 200 and parse_checkpoint(parse_note(r.text).text).size >= size:
            assert parse_checkpoint(parse_note(r.text).text).size == size
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"no checkpoint of {size} entries signed in {within_s} s")
