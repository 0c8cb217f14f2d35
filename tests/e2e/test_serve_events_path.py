"""``POST /v1/events`` on ``sealtrail serve`` is answered before the router (a bare ASGI handler):
every answer of ingest's route stays as it was, and so do the other methods and the metrics."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import orjson
import pytest

from sealtrail.core.note import Ed25519Verifier
from sealtrail.core.receipt import verify_receipt
from services.ingest.config import MAX_BODY_BYTES
from tests.support.serve import Served, serve_event, start_serve


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    served = start_serve(tmp_path_factory.mktemp("serve-events") / "data")
    try:
        yield served
    finally:
        served.stop()


def _post(served: Served, body: bytes, *, token: str | None = "gateway",
          content_type: str = "application/json") -> httpx.Response:
    headers = {"Content-Type": content_type}
    if token is not None:
        headers["Authorization"] = f"Bearer {served.tokens[token]}" if token in served.tokens else token
    return httpx.post(f"{served.url}/v1/events", content=body, headers=headers, timeout=30)


def _events(*events: object) -> bytes:
    return orjson.dumps({"events": list(events)})


def test_an_accepted_event_is_answered_202_with_a_receipt_that_verifies(served: Served) -> None:
    event = serve_event(1)
    r = _post(served, _events(event))
    assert r.status_code == 202 and r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["rejected"] == [] and [a["event_id"] for a in body["accepted"]] == [event["event_id"]]
    verifiers = [Ed25519Verifier.from_vkey(k["vkey"]) for k in httpx.get(f"{served.url}/v1/keys").json()["receipt"]]
    receipt = verify_receipt(body["accepted"][0]["receipt"], verifiers)
    assert receipt.event_id == event["event_id"]


def test_a_bad_event_beside_a_good_one_is_named_and_the_good_one_kept(served: Served) -> None:
    good, bad = serve_event(2), serve_event(3)
    bad["tool_tier"] = "sideways"
    r = _post(served, _events(good, bad))
    assert r.status_code == 202
    body = r.json()
    assert [a["event_id"] for a in body["accepted"]] == [good["event_id"]]
    assert [(x["index"], x["event_id"]) for x in body["rejected"]] == [(1, bad["event_id"])]
    assert "tool_tier" in (body["rejected"][0]["pointer"] or "") + body["rejected"][0]["detail"]


@pytest.mark.parametrize(("token", "status"), [(None, 401), ("Bearer st_nope_nope", 401), ("Basic abc", 401),
                                               ("operator", 403)])
def test_keys_are_checked(served: Served, token: str | None, status: int) -> None:
    r = _post(served, _events(serve_event(4)), token=token)
    assert r.status_code == status and r.headers["content-type"] == "application/problem+json"
    assert r.json()["status"] == status


def test_media_type_body_and_size_errors_are_problems_naming_what(served: Served) -> None:
    wrong_type = _post(served, _events(serve_event(5)), content_type="text/plain")
    assert wrong_type.status_code == 415 and "Content-Type" in wrong_type.json()["pointer"]
    not_json = _post(served, b'{"events": [')
    assert not_json.status_code == 400
    too_big = _post(served, b" " * (MAX_BODY_BYTES + 1))
    assert too_big.status_code == 413 and "over the limit" in too_big.json()["detail"]
    none_valid = _post(served, _events({"event_id": str(uuid.uuid4())}))
    assert none_valid.status_code == 422 and none_valid.json()["rejected"][0]["index"] == 0


def test_other_methods_are_405_with_allow_and_metrics_count_each_status(served: Served) -> None:
    got = httpx.get(f"{served.url}/v1/events")
    assert got.status_code == 405 and got.headers["allow"] == "POST"
    assert _post(served, _events(serve_event(6)), token=None).status_code == 401
    metrics = httpx.get(f"{served.url}/metrics").text
    counted = {line.split('"')[1]: float(line.split()[-1]) for line in metrics.splitlines()
               if line.startswith("sealtrail_ingest_requests_total{")}
    assert counted["202"] >= 1 and counted["401"] >= 1
    assert "sealtrail_ingest_request_seconds_count" in metrics


def test_the_same_event_id_sent_again_is_answered_202_again(served: Served) -> None:
    event = serve_event(7)
    first, again = _post(served, _events(event)), _post(served, _events(event))
    assert first.status_code == again.status_code == 202
    assert first.json()["accepted"][0]["event_id"] == again.json()["accepted"][0]["event_id"] == event["event_id"]
