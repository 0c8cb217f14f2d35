"""The full stack with witnesses that are not Sealtrail: ingest (sealing, Kafka), the ledger
(Kafka, PostgreSQL) with ``--witness-config`` of litewitness, omniwitness and ``sealtrail witness``
at quorum 2, and the query API on a real port with the same configuration. Every checkpoint the
ledger signs reaches the quorum, the checkpoint list and tlog-proof files say so, and ``sealtrail
verify --url ... --witness x3 --quorum 2`` passes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

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
    litewitness_binaries,
    omniwitness_binary,
    three_witnesses,
)

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


async def test_full_stack_checkpoints_reach_the_quorum(db_url: str, kafka_bootstrap: str, tmp_path: Path,
                                                       binaries: tuple[Path, Path], agent: SshAgent) -> None:
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
        config = WitnessingConfig(tuple(WitnessConfig(n, w.verifier, w.url) for n, w in witnesses.items()), 2)
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
            ids: list[str] = []
            for batch in range(4):  # four batches, so several checkpoints
                sent = await gw.post("/v1/events", json={"events": [call(payload={"n": batch * 20 + i})
                                                                   for i in range(20)]},
                                     headers={"Authorization": f"Bearer {tokens[f'{TENANT}:gateway']}"})
                assert sent.status_code == 202, sent.text
                ids += [a["event_id"] for a in sent.json()["accepted"]]
                await _cosigned_by_all(api, policy, (batch + 1) * 20)
            listed = (await api.get(f"/v1/logs/{TENANT}/checkpoints")).json()["checkpoints"]
            proof = await api.get(f"/v1/events/{ids[5]}/tlog-proof")
            done = await asyncio.to_thread(
                cli, "verify", "--url", query_url, "--log", TENANT, "--token", auditor,
                *[a for w in witnesses.values() for a in ("--witness", w.vkey)], "--quorum", "2", timeout=120)
    finally:
        for w in witnesses.values():
            w.stop()
    assert len(listed) >= 4, listed
    for item in listed:
        assert item["witnesses"]["witnessed"] and len(policy.check(item["note"]).names) >= 2, item
    assert proof.status_code == 200 and proof.headers["Sealtrail-Witness-Quorum"] == "2"
    assert int(proof.headers["Sealtrail-Witness-Cosignatures"]) >= 2
    assert len(policy.check(parse_proof(proof.text).note).names) >= 2
    assert done.returncode == 0, done.stderr
    for name in (LITEWITNESS_NAME, OMNIWITNESS_NAME, "witness.example/w1"):
        assert name in done.stdout, done.stdout
