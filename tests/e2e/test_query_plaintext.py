"""No plaintext leaves the query service except in reveal and export answers: not on Kafka (the
access events it writes are sealed), not in its log lines, not in its metrics."""

from __future__ import annotations

import logging
import uuid

import pytest

from tests.support.ingest import read_topic
from tests.support.query import QueryStack, call


async def test_markers_appear_only_in_the_answers(stack: QueryStack, caplog: pytest.LogCaptureFixture) -> None:
    """Payload and note markers come back in reveal and export answers and are found in no
    record of the sealed topic, no log line and no metric."""
    caplog.set_level(logging.DEBUG)
    payload_marker, note_marker = f"pm-{uuid.uuid4().hex}", f"nm-{uuid.uuid4().hex}"
    subject = f"user:{uuid.uuid4().hex[:10]}@example.com"
    ids = await stack.send("beta", [call(payload={"args": {"q": payload_marker}}, subjects=[subject])
                                    for _ in range(3)])
    await stack.logged("beta", ids)
    revealed = await stack.api.get(f"/v1/calls/{ids[0]}", params={"purpose": "scan"},
                                   headers={**stack.auth("beta:investigator"), "Sealtrail-Purpose-Note": note_marker})
    exported = await stack.api.post("/v1/subjects/export", headers=stack.auth("beta:dpo"),
                                    json={"subject": subject, "purpose": "scan", "note": note_marker})
    assert payload_marker in revealed.text and payload_marker in exported.text
    access = [revealed.json()["access_event_id"]]
    records = await read_topic(stack.settings.kafka_bootstrap, stack.settings.sealed_topic)
    assert any(a.encode() in value for a in access for _, value in records)  # the access event is there
    for _, value in records:
        assert payload_marker.encode() not in value and note_marker.encode() not in value
        assert subject.encode() not in value
    metrics = (await stack.api.get("/metrics")).text
    # The service's records (the test's own HTTP client logs the URLs it requests).
    logged = "\n".join(r.getMessage() + repr(vars(r)) for r in caplog.records
                       if not r.name.startswith(("httpx", "httpcore")))
    for marker in (payload_marker, note_marker, subject):
        assert marker not in metrics and marker not in logged
