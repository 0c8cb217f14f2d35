"""Ingest of the stack (real PostgreSQL and Kafka) under concurrent one-event requests: they share
publishes and receipt signatures, and each is still answered with exactly its own event, once on
the topic."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import httpx
import pytest

from sealtrail.core.note import Ed25519Verifier
from sealtrail.core.receipt import parse_receipt_proof, verify_receipt
from tests.support.ingest import Ingest, event, in_process, make_ingest, records_on

REQUESTS = 64


@pytest.fixture
async def ingest(fresh_db_url: str, kafka_bootstrap: str, topic_name: str) -> AsyncIterator[Ingest]:
    running = await make_ingest(fresh_db_url, kafka_bootstrap, topic_name)
    async with in_process(running):
        yield running


def _metric(text: str, name: str) -> float:
    found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert found, f"{name} is not in /metrics"
    return float(found.group(1))


async def test_concurrent_one_event_requests_share_publishes_and_signatures(ingest: Ingest) -> None:
    """64 one-event POSTs at once: each is answered 202 with its own event and a receipt that
    verifies and promises its record's digest; every event is on the topic exactly once; and they
    went to Kafka in fewer groups than requests (the group histogram counts all 64 batches), with
    fewer signed receipt notes than requests."""
    warm = event()  # the first request fills the key and API-key caches
    await ingest.client.post("/v1/events", json={"events": [warm]}, headers=ingest.auth("acme:gateway"))
    sent = [event() for _ in range(REQUESTS)]

    async def post(e: dict[str, object]) -> httpx.Response:
        return await ingest.client.post("/v1/events", json={"events": [e]}, headers=ingest.auth("acme:gateway"))

    answers = await asyncio.gather(*(post(e) for e in sent))
    assert [a.status_code for a in answers] == [202] * REQUESTS
    verifier = Ed25519Verifier.from_vkey((await ingest.client.get("/v1/keys")).json()["receipt"][0]["vkey"])
    on_topic = await records_on(ingest.settings.kafka_bootstrap, ingest.settings.sealed_topic)
    assert sorted(r.event_id for r in on_topic) == sorted(str(e["event_id"]) for e in [warm, *sent])
    digests = {r.event_id: r.header["payload_digest"] for r in on_topic}
    notes = set()
    for e, answer in zip(sent, answers, strict=True):
        (accepted,) = answer.json()["accepted"]
        assert accepted["event_id"] == e["event_id"]
        receipt = verify_receipt(accepted["receipt"], [verifier])
        assert (receipt.event_id, receipt.digest) == (e["event_id"], digests[str(e["event_id"])])
        notes.add(parse_receipt_proof(accepted["receipt"]).note)
    metrics = (await ingest.client.get("/metrics")).text
    assert _metric(metrics, "sealtrail_ingest_group_batches_sum") == REQUESTS + 1
    groups = _metric(metrics, "sealtrail_ingest_group_batches_count") - 1
    assert groups < REQUESTS and len(notes) == groups, (groups, len(notes))
