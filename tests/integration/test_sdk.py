"""The gateway SDK against the real ingest (real PostgreSQL and Kafka): delivery, retries, limits."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import httpx
import orjson

from sealtrail.core.receipt import verify_receipt
from sealtrail.infra.kafka import KafkaPublisher
from sealtrail.sdk import Accepted, Backoff, Rejected, SealtrailClient
from services.ingest import IngestOptions
from tests.support.ingest import GatedPublisher, event, in_process, make_ingest, on_port, records_on


class Recording(httpx.AsyncBaseTransport):
    """Passes requests to the real app and notes when each went out, its answer and its event ids."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.calls: list[tuple[float, int, list[str]]] = []
        self.answered = asyncio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        ids = [e.get("event_id") for e in orjson.loads(await request.aread())["events"]]
        sent = time.monotonic()
        response = await self.inner.handle_async_request(request)
        self.calls.append((sent, response.status_code, ids))
        self.answered.set()
        return response


async def test_sdk_delivers_batches_over_http_with_verifiable_receipts(
    fresh_db_url: str, kafka_bootstrap: str, topic_name: str
) -> None:
    """1,200 events go out in batches of at most 500 over a real socket; every one is accepted,
    its receipt verifies, and exactly those events are on the topic."""
    running = await make_ingest(fresh_db_url, kafka_bootstrap, topic_name)
    receipts: list[Accepted] = []
    sent = [event(payload={"n": i}) for i in range(1200)]
    async with on_port(running) as url, SealtrailClient(
        url, running.tokens["acme:gateway"], batch_max=500, on_accepted=receipts.extend
    ) as client:
        for e in sent:
            await client.send(e)
    assert client.stats.accepted == 1200 and client.pending == 0
    assert sorted(a.event_id for a in receipts) == sorted(e["event_id"] for e in sent)
    assert all(verify_receipt(a.receipt, [running.verifier]).event_id == a.event_id for a in receipts[:50])
    records = await records_on(kafka_bootstrap, topic_name)
    assert sorted(r.event_id for r in records) == sorted(e["event_id"] for e in sent)


async def test_sdk_retries_the_same_ids_after_retry_after(
    fresh_db_url: str, kafka_bootstrap: str, topic_name: str
) -> None:
    """Refused with 429 while another batch holds the only in-flight slot, the SDK waits at least
    the Retry-After and resends the very same event ids, which are then accepted."""
    gated = GatedPublisher(KafkaPublisher(bootstrap=kafka_bootstrap, timeout_s=5))
    running = await make_ingest(fresh_db_url, kafka_bootstrap, topic_name,
                                options=IngestOptions(max_in_flight=1), publisher=gated)
    async with in_process(running) as http:
        gated.gate.clear()
        held = asyncio.create_task(http.post("/v1/events", json={"events": [event()]},
                                             headers=running.auth("acme:gateway")))
        await gated.entered.wait()
        recording = Recording(httpx.ASGITransport(app=running.app))
        client = SealtrailClient(running.url, running.tokens["acme:gateway"], transport=recording,
                                 attempts=5, backoff=Backoff(base_s=0.05))
        for _ in range(20):
            await client.send(event())
        flushing = asyncio.create_task(client.flush())
        await recording.answered.wait()
        gated.gate.set()
        await flushing
        await client.close()
        assert (await held).status_code == 202
    (t0, first, ids0), (t1, second, ids1) = recording.calls
    assert (first, second) == (429, 202)
    assert ids0 == ids1 and len(ids0) == 20
    assert t1 - t0 >= 1.0, "the retry came before the Retry-After of 1 s"


async def test_sdk_reports_rejections_and_splits_oversized_batches(
    fresh_db_url: str, kafka_bootstrap: str, topic_name: str
) -> None:
    """Past ingest's batch limit the SDK splits the batch (413) until it fits; bad events come
    back through on_rejected with their pointers and are not retried."""
    running = await make_ingest(fresh_db_url, kafka_bootstrap, topic_name,
                                options=IngestOptions(max_batch_events=10))
    rejected: list[Rejected] = []
    async with in_process(running):
        recording = Recording(httpx.ASGITransport(app=running.app))
        async with SealtrailClient(running.url, running.tokens["acme:gateway"], batch_max=25,
                                   transport=recording, on_rejected=rejected.extend) as client:
            for i in range(25):
                await client.send(event(latency_ms=-1) if i == 7 else event())
    assert client.stats.accepted == 24 and client.stats.rejected == 1
    assert rejected[0].pointer.endswith("/latency_ms")
    assert [status for _, status, _ in recording.calls].count(413) >= 1
    assert all(len(ids) <= 10 for _, status, ids in recording.calls if status == 202)


def test_sdk_imports_no_server_dependency() -> None:
    """Importing the SDK loads none of fastapi, starlette, uvicorn, asyncpg, aiokafka, prometheus."""
    code = ("import sys, sealtrail.sdk; heavy = {'fastapi', 'starlette', 'uvicorn', 'asyncpg', 'aiokafka',"
            " 'prometheus_client', 'pydantic_settings'}; print(sorted(heavy & {m.split('.')[0] for m in"
            " sys.modules}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
