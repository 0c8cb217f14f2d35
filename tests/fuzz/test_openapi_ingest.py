"""Schemathesis against the real ingest app (uvicorn on a port, real PostgreSQL and Kafka).

With a gateway key every documented operation answers without a 5xx, with a documented status,
content type and body schema; without a key, or with a malformed, unknown or revoked one, every
operation except the public ones (/healthz, /readyz, /metrics, GET /v1/keys) answers 401.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from sealtrail.infra.auth import Role
from tests.fuzz.harness import CHECKS, FuzzReport, LoopThread, cleanup, fuzz_operations, load_schema
from tests.support.ingest import Ingest, event, make_ingest, on_port
from tests.support.query import drop_database, new_database

pytestmark = pytest.mark.services
PUBLIC = {"GET /healthz", "GET /readyz", "GET /metrics", "GET /v1/keys"}
OTLP_TYPES = ("application/json", "application/x-protobuf")


@pytest.fixture(scope="module")
def live_ingest(pg_url: str, kafka_bootstrap: str) -> Iterator[tuple[Ingest, str]]:
    """Ingest on its own database and topic, with a gateway and an auditor key, on a real port."""
    loop = LoopThread()
    try:
        db_url = loop.run(new_database(pg_url))
        loop.enter(cleanup(lambda: drop_database(pg_url, db_url)))
        ingest = loop.run(make_ingest(db_url, kafka_bootstrap, f"fuzz.{uuid.uuid4().hex[:12]}",
                                      roles=(Role.GATEWAY, Role.AUDITOR)))
        url = loop.enter(on_port(ingest))
        yield ingest, url
    finally:
        loop.close()


def test_valid_key_every_operation_conforms(live_ingest: tuple[Ingest, str]) -> None:
    """With a gateway key: no 5xx, and status, content type and body match the OpenAPI document."""
    ingest, url = live_ingest
    report = FuzzReport()
    fuzz_operations(url, lambda method, path: ingest.auth("acme:gateway"), report)
    print(report.summary("ingest, gateway key"))
    assert set(report.cases) >= PUBLIC | {"POST /v1/events", "POST /v1/traces"}
    assert all(n > 0 for n in report.cases.values()), report.cases
    assert not any(status >= 500 for status in report.statuses)


@pytest.mark.parametrize("credential", ["none", "malformed", "unknown", "wrong-scheme"])
def test_without_a_valid_key_only_public_operations_answer(live_ingest: tuple[Ingest, str],
                                                           credential: str) -> None:
    """Without a usable key every non-public operation answers 401 (no authentication bypass)."""
    ingest, url = live_ingest
    good = ingest.tokens["acme:gateway"]
    headers = {
        "none": {},
        "malformed": {"Authorization": "Bearer not-a-key"},
        "unknown": {"Authorization": f"Bearer {good[:-4]}AAAA"},
        "wrong-scheme": {"Authorization": f"Basic {good}"},
    }[credential]
    report = FuzzReport()

    def check(label: str, response: Any) -> None:
        if label not in PUBLIC:
            assert response.status_code == 401, (label, response.status_code, response.text)
            # OTLP/HTTP answers failures with a google.rpc.Status in the request's encoding.
            expected = OTLP_TYPES if label == "POST /v1/traces" else ("application/problem+json",)
            assert response.headers["content-type"][0].startswith(expected)

    fuzz_operations(url, lambda method, path: headers, report, default_examples=6, check=check)
    print(report.summary(f"ingest, credential {credential}"))
    assert report.cases.get("POST /v1/events", 0) > 0


def test_accepted_batch_conforms(live_ingest: tuple[Ingest, str]) -> None:
    """A batch with good and bad events (which generated cases rarely hit) answers 202 with a body,
    status and content type that match the OpenAPI document."""
    ingest, url = live_ingest
    operation = load_schema(url)["/v1/events"]["POST"]
    case = operation.Case(body={"events": [event(), {"type": "tool_call"}]}, media_type="application/json")
    response = case.call(base_url=url, headers=ingest.auth("acme:gateway"), timeout=60)
    assert response.status_code == 202, response.text
    case.validate_response(response, checks=CHECKS)
    assert len(response.json()["accepted"]) == 1 and len(response.json()["rejected"]) == 1
