"""Ingest against real PostgreSQL and Kafka: validation, sealing, publishing, receipts, limits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from sealtrail.core.note import Ed25519Verifier
from sealtrail.core.receipt import RECEIPT_FORMAT, parse_receipt_proof, verify_receipt
from sealtrail.core.sealing import SealedPayload, open_sealed, subject_ref
from sealtrail.devstack import KafkaServer
from sealtrail.infra.kek import IndexKeyWrapper
from sealtrail.infra.keystore_postgres import PostgresKeyStore
from sealtrail.sdk import Backoff, SealtrailClient
from services.ingest import IngestOptions
from tests.support.ingest import Ingest, event, in_process, make_ingest, on_port, records_on


@pytest.fixture
async def ingest(fresh_db_url: str, kafka_bootstrap: str, topic_name: str) -> AsyncIterator[Ingest]:
    running = await make_ingest(fresh_db_url, kafka_bootstrap, topic_name)
    async with in_process(running):
        yield running


async def _post(ingest: Ingest, events: list[object], who: str = "acme:gateway") -> httpx.Response:
    return await ingest.client.post("/v1/events", json={"events": events}, headers=ingest.auth(who))


async def test_mixed_batch_keeps_exactly_the_good_events(ingest: Ingest) -> None:
    """Good events are accepted; each bad one is rejected with a pointer at its offending field."""
    good = [event(), event(payload={"result": [1, 2]}, subjects=[]), event()]
    missing = event()
    del missing["agent_id"]
    server_set = event(tenant="other-tenant")
    unknown = event(colour="blue")
    wrong_type = event(latency_ms="12")
    batch = [good[0], missing, good[1], server_set, unknown, wrong_type, good[2]]
    resp = await _post(ingest, batch)
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert [a["event_id"] for a in body["accepted"]] == [e["event_id"] for e in good]
    assert {a["log"] for a in body["accepted"]} == {"acme"}
    assert [(r["index"], r["pointer"]) for r in body["rejected"]] == [
        (1, "/events/1/agent_id"), (3, "/events/3/tenant"), (4, "/events/4/colour"),
        (5, "/events/5/latency_ms")]
    assert all(r["event_id"] == batch[r["index"]]["event_id"] for r in body["rejected"])
    records = await records_on(ingest.settings.kafka_bootstrap, ingest.settings.sealed_topic)
    assert sorted(r.event_id for r in records) == sorted(e["event_id"] for e in good)


async def test_records_are_sealed_stamped_and_open_with_the_keys(ingest: Ingest, fresh_db_url: str) -> None:
    """A record carries tenant and gateway from the key, no payload or subject in clear, and its
    ciphertext opens with the period and subject keys into exactly the payload sent."""
    sent = event(payload={"args": {"q": "select name from users"}}, subjects=["user:Bob@Example.com"])
    assert (await _post(ingest, [sent])).status_code == 202
    (record,) = await records_on(ingest.settings.kafka_bootstrap, ingest.settings.sealed_topic)
    header = record.header
    assert (record.log, header["tenant"], header["gateway_id"]) == ("acme", "acme", "gateway-1")
    assert "payload" not in header and "subjects" not in header and "received_at" in header
    assert len(header["key_ids"]) == 2 and header["payload_digest"].startswith("blake3:")
    pool = await asyncpg.create_pool(fresh_db_url, min_size=1, max_size=2)
    assert pool is not None
    try:
        keys = await PostgresKeyStore(pool=pool, kek=ingest.kek).get_keys("acme", header["key_ids"])
        wrapped = await pool.fetchrow("SELECT index_key, index_key_kek FROM tenants WHERE tenant_id='acme'")
        assert wrapped is not None
        index_key = IndexKeyWrapper(kek=ingest.kek, tenant="acme").unwrap(
            bytes(wrapped["index_key"]), kek_id=wrapped["index_key_kek"])
        ref = await pool.fetchval("SELECT subject_ref FROM data_keys WHERE key_id = $1", header["key_ids"][1])
    finally:
        await pool.close()
    assert bytes(ref) == subject_ref(index_key, "user:Bob@example.com")
    sealed = SealedPayload(record.nonce, record.ciphertext, tuple(header["key_ids"]),
                           header["payload_digest"], header["payload_size"])
    opened = open_sealed(sealed, tenant="acme", event_id=record.event_id, type="tool_call", keys=keys)
    assert opened == sent["payload"]


async def test_receipts_verify_with_the_published_key(ingest: Ingest) -> None:
    """Each receipt verifies with the vkey from GET /v1/keys (also recorded in signing_keys) and
    promises the event id, log and payload digest of the published record; a batch is signed once."""
    resp = await _post(ingest, [event(), event()])
    keys = (await ingest.client.get("/v1/keys")).json()
    assert keys["receipt_format"] == RECEIPT_FORMAT
    vkey = keys["receipt"][0]["vkey"]
    conn = await asyncpg.connect(ingest.settings.require_database())
    try:
        assert await conn.fetchval("SELECT vkey FROM signing_keys WHERE purpose = 'receipt'") == vkey
    finally:
        await conn.close()
    verifier = Ed25519Verifier.from_vkey(vkey)
    records = {r.event_id: r for r in await records_on(ingest.settings.kafka_bootstrap,
                                                       ingest.settings.sealed_topic)}
    for item in resp.json()["accepted"]:
        receipt = verify_receipt(item["receipt"], [verifier])
        assert (receipt.event_id, receipt.log) == (item["event_id"], "acme")
        assert receipt.digest == records[item["event_id"]].header["payload_digest"]
        assert item["receipt"].startswith(RECEIPT_FORMAT + "\n")
    # one signature per batch: both receipts carry the same signed note
    assert len({parse_receipt_proof(item["receipt"]).note for item in resp.json()["accepted"]}) == 1


async def test_resent_batch_is_accepted_and_published_again(ingest: Ingest) -> None:
    """Idempotency contract: the same batch twice gives two 202s and two records per event id,
    with the same event ids (the ledger keeps one); both receipts verify."""
    batch = [event(), event()]
    first, second = await _post(ingest, batch), await _post(ingest, batch)
    assert first.status_code == second.status_code == 202
    records = await records_on(ingest.settings.kafka_bootstrap, ingest.settings.sealed_topic)
    ids = [r.event_id for r in records]
    assert sorted(ids) == sorted([e["event_id"] for e in batch] * 2)
    for item in first.json()["accepted"] + second.json()["accepted"]:
        assert verify_receipt(item["receipt"], [ingest.verifier]).event_id == item["event_id"]


async def test_batch_with_nothing_acceptable_is_422(ingest: Ingest) -> None:
    """A batch where every event is bad is answered 422 problem details listing each rejection,
    and nothing is published."""
    resp = await _post(ingest, [{"type": "tool_call"}, event(type="erasure")])
    assert resp.status_code == 422
    assert resp.headers["content-type"] == "application/problem+json"
    body = resp.json()
    assert body["accepted"] == [] and [r["index"] for r in body["rejected"]] == [0, 1]
    assert await records_on(ingest.settings.kafka_bootstrap, ingest.settings.sealed_topic) == []


async def test_malformed_bodies_are_400_problems(ingest: Ingest) -> None:
    """Bodies that are not {"events": [...]} get 400 problem details, with a pointer when a member
    is at fault."""
    headers = {**ingest.auth("acme:gateway"), "content-type": "application/json"}
    for body, pointer in ((b"not json", ""), (b"[]", ""), (b'{"events": {}}', "/events"),
                          (b'{"events": [], "tenant": "x"}', "/tenant")):
        resp = await ingest.client.post("/v1/events", content=body, headers=headers)
        assert resp.status_code == 400 and resp.json().get("pointer", "") == pointer


async def test_size_limits_are_413(fresh_db_url: str, kafka_bootstrap: str, topic_name: str) -> None:
    """Past the event count, the declared Content-Length or the bytes actually streamed: 413."""
    running = await make_ingest(fresh_db_url, kafka_bootstrap, topic_name,
                                options=IngestOptions(max_batch_events=3, max_body_bytes=4000))
    async with in_process(running) as client:
        headers = running.auth("acme:gateway")
        many = await client.post("/v1/events", json={"events": [event() for _ in range(4)]}, headers=headers)
        big = await client.post("/v1/events", json={"events": [event(payload={"x": "y" * 5000})]},
                                headers=headers)

        async def chunks() -> AsyncIterator[bytes]:
            yield b'{"events": ['
            for _ in range(10):
                yield b'{"type": "tool_call", "pad": "' + b"z" * 1000 + b'"},'
            yield b"{}]}"

        streamed = await client.post("/v1/events", content=chunks(),
                                     headers={**headers, "content-type": "application/json"})
    assert [r.status_code for r in (many, big, streamed)] == [413, 413, 413]
    assert "content-length" not in streamed.request.headers
    assert many.json()["type"].endswith("/too-large")


async def test_backpressure_is_429_with_retry_after(
    fresh_db_url: str, kafka_bootstrap: str, topic_name: str
) -> None:
    """With one batch allowed in flight, concurrent batches are refused 429 with Retry-After and
    what is refused is not published."""
    running = await make_ingest(fresh_db_url, kafka_bootstrap, topic_name,
                                options=IngestOptions(max_in_flight=1, publish_timeout_s=5))
    async with in_process(running) as client:
        batches = [[event() for _ in range(100)] for _ in range(8)]
        answers = await asyncio.gather(*(client.post("/v1/events", json={"events": b},
                                                     headers=running.auth("acme:gateway")) for b in batches))
    codes = [a.status_code for a in answers]
    assert 202 in codes and 429 in codes, codes
    assert all(a.headers["retry-after"] == "1" for a in answers if a.status_code == 429)
    published = {r.event_id for r in await records_on(kafka_bootstrap, topic_name)}
    for batch, answer in zip(batches, answers, strict=True):
        ids = {e["event_id"] for e in batch}
        assert (ids <= published) if answer.status_code == 202 else not (ids & published)


async def test_health_readiness_metrics_and_openapi(ingest: Ingest) -> None:
    """/healthz and /readyz answer, /metrics counts by fixed labels only, and OpenAPI documents
    POST /v1/events with its response models."""
    await _post(ingest, [event(), {"type": "nope"}])
    assert (await ingest.client.get("/healthz")).json() == {"status": "ok"}
    ready = await ingest.client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["kafka_producer"] is True
    metrics = (await ingest.client.get("/metrics")).text
    assert "sealtrail_ingest_events_accepted_total 1.0" in metrics
    assert 'sealtrail_ingest_events_rejected_total{reason="invalid-event"} 1.0' in metrics
    assert ingest.tokens["acme:gateway"].split("_", 2)[2] not in metrics and "alice" not in metrics
    spec = (await ingest.client.get("/openapi.json")).json()
    responses = spec["paths"]["/v1/events"]["post"]["responses"]
    assert {"202", "401", "403", "413", "422", "429", "503"} <= set(responses)




async def test_broker_outage_is_503_and_the_sdk_spools_until_it_returns(
    fresh_db_url: str, kafka_bootstrap: str, kafka_server: KafkaServer | None, topic_name: str,
    tmp_path: Path,
) -> None:
    """With the broker stopped, ingest answers 503 with Retry-After and accepts nothing; the SDK
    spools its batches to disk and delivers every event once the broker is back on its ports."""
    private: KafkaServer | None = None
    if kafka_server is None:  # an external broker cannot be stopped here: start a private one
        private = KafkaServer(datadir=tmp_path / "kafka")
        await asyncio.to_thread(private.start)
        kafka_server, kafka_bootstrap = private, private.bootstrap
    try:
        await _outage(fresh_db_url, kafka_bootstrap, kafka_server, topic_name, tmp_path)
    finally:
        if private is not None:
            await asyncio.to_thread(private.stop)


async def _outage(
    fresh_db_url: str, kafka_bootstrap: str, kafka_server: KafkaServer, topic_name: str, tmp_path: Path
) -> None:
    running = await make_ingest(fresh_db_url, kafka_bootstrap, topic_name, options=IngestOptions(
        publish_timeout_s=2.0, unavailable_retry_after_s=1.0, auth_cache_ttl_s=0.0))
    token = running.tokens["acme:gateway"]
    async with on_port(running) as url, httpx.AsyncClient(base_url=url) as http:
        warm = await http.post("/v1/events", json={"events": [event()]}, headers=running.auth("acme:gateway"))
        assert warm.status_code == 202
        await asyncio.to_thread(kafka_server.stop)
        try:
            lost = [event() for _ in range(5)]
            down = await http.post("/v1/events", json={"events": lost}, headers=running.auth("acme:gateway"))
            assert down.status_code == 503 and int(down.headers["retry-after"]) >= 1
            assert down.json()["type"].endswith("/unavailable") and "accepted" not in down.json()
            ready = await http.get("/readyz")
            assert ready.status_code == 503 and ready.json()["kafka_producer"] is False
            sdk = SealtrailClient(url, token, batch_max=10, flush_interval_s=0.2, attempts=2,
                                  spool_dir=tmp_path / "spool", backoff=Backoff(base_s=0.05, cap_s=0.5))
            sent = [event() for _ in range(30)]
            for e in sent:
                await sdk.send(e)
            await sdk.flush()
            assert sdk.spooled and sdk.stats.accepted == 0 and sdk.stats.last_status == 503
        finally:
            await asyncio.to_thread(kafka_server.start)
        deadline = asyncio.get_running_loop().time() + 60
        while sdk.spooled:
            assert asyncio.get_running_loop().time() < deadline, "the spool was not drained in 60 s"
            await asyncio.sleep(0.5)
            await sdk.flush()
        await sdk.close()
    assert sdk.stats.accepted == 30
    published = {r.event_id for r in await records_on(kafka_bootstrap, topic_name)}
    assert {e["event_id"] for e in sent} <= published
