"""OTLP/HTTP trace ingest on the production ingest, against real PostgreSQL and Kafka: the SDK's
protobuf exporter puts sealed tool_call records on the topic, and back-pressure answers 429 with
Retry-After in the protobuf encoding."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from sealtrail.core.sealing import SealedPayload, open_sealed
from sealtrail.infra.kafka import KafkaPublisher
from sealtrail.infra.keystore_postgres import PostgresKeyStore
from services.ingest import IngestOptions
from services.ingest.otlp.answer import PROTOBUF
from tests.support.ingest import GatedPublisher, Ingest, make_ingest, on_port, records_on
from tests.support.otlp import MARKER, Producer, collector_body, protobuf_body, tool_json_span

pytestmark = pytest.mark.services


@pytest.fixture
async def ingest(fresh_db_url: str, kafka_bootstrap: str, topic_name: str) -> AsyncIterator[Ingest]:
    running = await make_ingest(fresh_db_url, kafka_bootstrap, topic_name)
    async with on_port(running):
        yield running


async def test_sdk_exporter_spans_become_sealed_records(ingest: Ingest, fresh_db_url: str,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    """200 tool spans and 50 chat spans from the SDK exporter: 200 records on the topic, each a
    tool_call stamped with the key's tenant and gateway, its arguments sealed (they open with the
    keys into exactly what was sent), and the planted marker nowhere in clear on the topic or in
    any log record of the process (its fields included)."""
    caplog.set_level(logging.DEBUG)
    producer = Producer(ingest.url, ingest.tokens["acme:gateway"])
    try:
        def produce() -> None:
            for i in range(200):
                producer.tool_call(i)
                if i % 4 == 0:
                    producer.chat()
            producer.flush()
        await asyncio.to_thread(produce)
        expected = producer.tool_event_ids()
    finally:
        producer.shutdown()
    records = await records_on(ingest.settings.kafka_bootstrap, ingest.settings.sealed_topic)
    assert {r.event_id for r in records} == expected and len(records) == 200
    header = records[0].header
    assert (header["tenant"], header["gateway_id"], header["type"]) == ("acme", "gateway-1", "tool_call")
    assert header["agent_id"] == "support-bot" and len(header["key_ids"]) == 2  # period key + enduser subject
    assert all(MARKER.encode() not in r.ciphertext and MARKER not in json.dumps(r.header) for r in records)
    pool = await asyncpg.create_pool(fresh_db_url, min_size=1, max_size=2)
    assert pool is not None
    try:
        keys = await PostgresKeyStore(pool=pool, kek=ingest.kek).get_keys("acme", header["key_ids"])
    finally:
        await pool.close()
    record = records[0]
    sealed = SealedPayload(record.nonce, record.ciphertext, tuple(header["key_ids"]), header["payload_digest"],
                           header["payload_size"])
    payload = open_sealed(sealed, tenant="acme", event_id=record.event_id, type="tool_call", keys=keys)
    assert MARKER in payload["arguments"] and MARKER in payload["result"]
    assert any(r.getMessage() == "traces" for r in caplog.records)
    assert not [r for r in caplog.records if MARKER in str(vars(r))]


async def test_backpressure_is_429_with_retry_after_in_protobuf(fresh_db_url: str, kafka_bootstrap: str,
                                                                topic_name: str) -> None:
    """With one batch allowed in flight and held at the publisher, a second export is answered 429
    with Retry-After and a protobuf google.rpc.Status; the held one then completes with 200."""
    gated = GatedPublisher(KafkaPublisher(bootstrap=kafka_bootstrap, timeout_s=5))
    running = await make_ingest(fresh_db_url, kafka_bootstrap, topic_name, publisher=gated,
                                options=IngestOptions(max_in_flight=1, auth_cache_ttl_s=0.0))
    body = json.dumps(collector_body([tool_json_span()])).encode()
    async with on_port(running), httpx.AsyncClient(base_url=running.url, timeout=30) as client:
        headers = {"Authorization": f"Bearer {running.tokens['acme:gateway']}", "Content-Type": "application/json"}
        gated.gate.clear()
        held = asyncio.create_task(client.post("/v1/traces", content=body, headers=headers))
        await asyncio.wait_for(gated.entered.wait(), 10)
        refused = await client.post("/v1/traces", content=protobuf_body(1),
                                    headers={**headers, "Content-Type": PROTOBUF})
        gated.gate.set()
        done = await held
    assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
    assert refused.headers["content-type"] == PROTOBUF and refused.content.startswith(b"\x08\x08")
    assert done.status_code == 200 and done.json() == {}
