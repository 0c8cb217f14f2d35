"""Bad input at ingest's HTTP edge, on real PostgreSQL and Kafka.

Every bad event gets an RFC 9457 rejection naming its problem type and pointing (RFC 6901) at the
field at fault, while the good events of the same batch are accepted (202 with both lists). Bad
bodies and bad credentials get a problem document of their own. What tests/integration/
test_ingest.py already covers (missing, server-set, unknown and mistyped fields, non-object bodies,
the count and byte limits, replays of a whole batch) is not repeated here.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import orjson
import pytest

from sealtrail.core.fields import MAX_HEADER_STRING
from sealtrail.core.validation import MAX_DEPTH, MAX_PAYLOAD_BYTES
from sealtrail.infra.apikeys import KeyAdmin
from sealtrail.infra.auth import Role
from sealtrail.infra.auth_postgres import PostgresAuthStore
from tests.support.ingest import Ingest, event, in_process, make_ingest, records_on

pytestmark = pytest.mark.services
PROBLEMS = "https://sealtrail.dev/problems/"


@pytest.fixture(scope="module")
async def ingest(pg_url: str, kafka_bootstrap: str) -> AsyncIterator[Ingest]:
    from tests.support.query import drop_database, new_database

    db_url = await new_database(pg_url)
    try:
        running = await make_ingest(db_url, kafka_bootstrap, "fuzz.bad-input", roles=(Role.GATEWAY,))
        async with in_process(running):
            yield running
    finally:
        await drop_database(pg_url, db_url)


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth):
        value = {"x": value}
    return value


def _iso(delta: timedelta) -> str:
    return (datetime.now(UTC) + delta).isoformat().replace("+00:00", "Z")


# name -> (the bad event, the problem type slug, the pointer under /events/<i>)
BAD_EVENTS: dict[str, tuple[dict[str, Any] | object, str, str]] = {
    "NUL in a header string": (event(agent_id="agent\x00-7"), "invalid-event", "/agent_id"),
    "escape character in a header string": (event(tool_name="db\x1b[2Jquery"), "invalid-event", "/tool_name"),
    "newline in a header string": (event(server_id="srv\ndb"), "invalid-event", "/server_id"),
    "C1 control in a header string": (event(session_id="s\x851"), "invalid-event", "/session_id"),
    "header string over the limit": (event(agent_id="a" * (MAX_HEADER_STRING + 1)), "invalid-event", "/agent_id"),
    "NUL in a field name": ({**event(), "bad\x00name": 1}, "invalid-event", ""),
    "integer where a string is due": (event(agent_id=7), "invalid-event", "/agent_id"),
    "boolean where an integer is due": (event(latency_ms=True), "invalid-event", "/latency_ms"),
    "object where a string is due": (event(decision={"allow": True}), "invalid-event", "/decision"),
    "subjects as a string": (event(subjects="user:alice@example.com"), "invalid-event", "/subjects"),
    "event id not a UUID": (event(event_id="not-a-uuid"), "invalid-event", "/event_id"),
    "occurred_at not a time": (event(occurred_at="yesterday"), "invalid-event", "/occurred_at"),
    "occurred_at an hour ahead": (event(occurred_at=_iso(timedelta(hours=1))), "clock-skew", "/occurred_at"),
    "occurred_at thirty days old": (event(occurred_at=_iso(-timedelta(days=30))), "clock-skew", "/occurred_at"),
    "unknown event type": (event(type="teleport"), "", "/type"),
    "arguments nested too deep": (event(payload={"args": _nested(MAX_DEPTH + 5)}), "", "/payload"),
    "payload over the limit": (event(payload={"args": {"blob": "x" * (MAX_PAYLOAD_BYTES + 1)}}), "", "/payload"),
    "event that is a string": ("tool_call", "invalid-event", ""),
    "event that is null": (None, "invalid-event", ""),
    "event that is an array": ([event()], "invalid-event", ""),
}


async def _post(ingest: Ingest, events: list[object], **headers: str) -> httpx.Response:
    return await ingest.client.post("/v1/events", json={"events": events},
                                    headers={**ingest.auth("acme:gateway"), **headers})


def _is_problem(resp: httpx.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = resp.json()
    assert body["status"] == status and body["type"].startswith(PROBLEMS) and body["title"] and body["detail"]
    return body


async def test_each_bad_event_is_rejected_next_to_good_ones(ingest: Ingest) -> None:
    """One batch interleaving every bad event with good ones: 202, exactly the good events accepted
    and published, and each bad one rejected with its problem type and a pointer at its field."""
    batch: list[object] = []
    expected: dict[int, tuple[str, str, str]] = {}
    good_ids: list[str] = []
    for name, (bad, slug, where) in BAD_EVENTS.items():
        good = event()
        good_ids.append(good["event_id"])
        batch.append(good)
        expected[len(batch)] = (name, slug, where)
        batch.append(bad)
    resp = await _post(ingest, batch)
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert [a["event_id"] for a in body["accepted"]] == good_ids
    rejected = {r["index"]: r for r in body["rejected"]}
    assert sorted(rejected) == sorted(expected)
    for index, (name, slug, where) in expected.items():
        r = rejected[index]
        assert r["pointer"].startswith(f"/events/{index}{where}"), (name, r)
        assert r["type"].startswith(PROBLEMS) and r["title"] and r["detail"], (name, r)
        if slug:
            assert r["type"] == PROBLEMS + slug, (name, r)
        assert "x" * 100 not in r["detail"] and "\x00" not in r["detail"], (name, "echoes its input")
    records = await records_on(ingest.settings.kafka_bootstrap, ingest.settings.sealed_topic)
    assert set(good_ids) <= {r.event_id for r in records}
    assert not {batch[i]["event_id"] for i in expected if isinstance(batch[i], dict)  # type: ignore[index]
                } & {r.event_id for r in records}


async def test_replayed_event_ids_in_one_batch_are_each_acknowledged(ingest: Ingest) -> None:
    """The same event id twice in one batch: ingest keeps no memory of ids (docs/ingest.md), so both
    are accepted with a receipt each; the ledger keeps one."""
    once = event()
    resp = await _post(ingest, [once, once, event()])
    assert resp.status_code == 202, resp.text
    ids = [a["event_id"] for a in resp.json()["accepted"]]
    assert ids[:2] == [once["event_id"]] * 2 and len(ids) == 3 and resp.json()["rejected"] == []


BAD_BODIES: dict[str, tuple[bytes, int, str]] = {
    "invalid UTF-8 bytes": (b'{"events": [{"agent_id": "\xff\xfe\xc3"}]}', 400, ""),
    "truncated JSON": (b'{"events": [{"type": "tool_call"', 400, ""),
    "NaN literal outside the events": (b'{"events": [], "n": NaN}', 400, ""),
    "empty body": (b"", 400, ""),
    "a string that never ends": (b'{"events": [NaN, "open]}', 400, ""),
    "a repeated events member": (b'{"events": [], "events": []}', 400, ""),
    "events as a string": (b'{"events": "[]"}', 400, "/events"),
    "member name with a NUL": (b'{"events": [], "a\\u0000b": 1}', 400, ""),
}


async def test_bad_bodies_are_400_problems(ingest: Ingest) -> None:
    """Bodies that cannot be read as a batch: a 400 problem, with a pointer where a member is at
    fault, and never a 5xx."""
    headers = {**ingest.auth("acme:gateway"), "content-type": "application/json"}
    for name, (body, status, pointer) in BAD_BODIES.items():
        resp = await ingest.client.post("/v1/events", content=body, headers=headers)
        problem = _is_problem(resp, status)
        assert problem.get("pointer", "") == pointer, (name, problem)


def _with(member: bytes, *, drop: str = "", **overrides: Any) -> bytes:
    """A good event's JSON without ``drop``, with ``member`` (raw text, e.g. ``"n": NaN``) last."""
    ev = event(**overrides)
    ev.pop(drop, None)
    return orjson.dumps(ev)[:-1] + b", " + member + b"}"


_PAYLOAD = b'"payload": '
# name -> (the bad event as raw text, the problem type slug, the pointer under /events/<i>)
UNREADABLE_EVENTS: dict[str, tuple[bytes, str, str]] = {
    "an integer past 64 bits in the payload": (
        _with(_PAYLOAD + b'{"amount": 123456789012345678901234567890}', drop="payload"),
        "invalid-event", "/payload"),
    "an integer past 64 bits in a header count": (
        _with(b'"latency_ms": 18446744073709551616'), "invalid-event", "/latency_ms"),
    "subjects sent twice, the second empty": (
        _with(b'"subjects": []', subjects=["user:dup@example.com"]), "invalid-event", ""),
    "a payload object repeating a member": (
        _with(_PAYLOAD + b'{"to": "a@example.com", "to": "b@example.com"}', drop="payload"),
        "invalid-event", ""),
    "NaN in the payload": (_with(_PAYLOAD + b'{"n": NaN}', drop="payload"), "invalid-event", ""),
    "1e400 in the payload": (_with(_PAYLOAD + b'{"n": 1e400}', drop="payload"), "invalid-event", "/payload"),
    "a lone surrogate in the payload": (
        _with(_PAYLOAD + b'{"s": "\\udc00"}', drop="payload"), "invalid-event", "/payload"),
    "a lone surrogate in a header string": (
        _with(b'"agent_id": "a\\ud800"', drop="agent_id"), "invalid-event", "/agent_id"),
    "nested past the JSON parser's limit": (
        _with(_PAYLOAD + b'{"x": ' * 3000 + b"1" + b"}" * 3000, drop="payload"), "nesting-too-deep", ""),
}


async def test_events_that_cannot_be_read_are_rejected_next_to_good_ones(ingest: Ingest) -> None:
    """Events a general JSON parser would alter (integers past 64 bits turned into floats, a
    repeated member resolved by keeping one value) or refuse (NaN, nesting past its limit) are
    each rejected at their index, never altered, and never sink the good events beside them."""
    texts: list[bytes] = []
    expected: dict[int, tuple[str, str, str]] = {}
    good_ids: list[str] = []
    for name, (bad, slug, where) in UNREADABLE_EVENTS.items():
        good = event()
        good_ids.append(good["event_id"])
        texts.append(orjson.dumps(good))
        expected[len(texts)] = (name, slug, where)
        texts.append(bad)
    body = b'{"events": [' + b", ".join(texts) + b"]}"
    resp = await ingest.client.post("/v1/events", content=body, headers={
        **ingest.auth("acme:gateway"), "content-type": "application/json"})
    assert resp.status_code == 202, resp.text
    answer = resp.json()
    assert [a["event_id"] for a in answer["accepted"]] == good_ids
    rejected = {r["index"]: r for r in answer["rejected"]}
    assert sorted(rejected) == sorted(expected)
    for index, (name, slug, where) in expected.items():
        r = rejected[index]
        assert r["pointer"] == f"/events/{index}{where}" and r["type"] == PROBLEMS + slug, (name, r)
        assert "example.com" not in r["detail"] and "1234567890" not in r["detail"], (name, "echoes its input")
    records = await records_on(ingest.settings.kafka_bootstrap, ingest.settings.sealed_topic)
    published = {r.event_id for r in records}
    assert set(good_ids) <= published
    bad_ids = {re.search(rb'"event_id":"([0-9a-f-]{36})"', texts[i]).group(1).decode()  # type: ignore[union-attr]
               for i in expected}
    assert len(bad_ids) == len(expected) and not bad_ids & published


async def test_a_body_that_is_not_json_by_its_media_type_is_415(ingest: Ingest) -> None:
    """Only JSON media types are read; the answer names the header, and nothing is published."""
    body = orjson.dumps({"events": [event()]})
    auth = ingest.auth("acme:gateway")
    answers = {}
    for content_type in ("text/plain", "application/x-www-form-urlencoded", None,
                         "application/json; charset=utf-8", "application/vnd.sealtrail+json"):
        headers = {**auth, "content-type": content_type} if content_type else auth
        resp = await ingest.client.post("/v1/events", content=body, headers=headers)
        answers[content_type] = resp.status_code
        if resp.status_code == 415:
            problem = _is_problem(resp, 415)
            assert problem["type"] == PROBLEMS + "unsupported-media-type"
            assert problem["pointer"] == "header:Content-Type"
    assert answers == {"text/plain": 415, "application/x-www-form-urlencoded": 415, None: 415,
                       "application/json; charset=utf-8": 202, "application/vnd.sealtrail+json": 202}


async def _key(ingest: Ingest, *, revoked: bool = False, expired: bool = False) -> str:
    pool = await asyncpg.create_pool(ingest.settings.require_database(), min_size=1, max_size=1)
    assert pool is not None
    try:
        past = datetime.now(UTC) - timedelta(days=10)
        admin = KeyAdmin(store=PostgresAuthStore(pool=pool), clock=(lambda: past) if expired else datetime.now)
        issued = await admin.create_key(tenant="acme", role=Role.GATEWAY, label="edge",
                                        expires_in=timedelta(days=1) if expired else None)
        if revoked:
            await KeyAdmin(store=PostgresAuthStore(pool=pool)).revoke_key(issued.key.key_id)
        return issued.token
    finally:
        await pool.close()


async def test_bad_credentials_are_401_problems(ingest: Ingest) -> None:
    """Expired, revoked, truncated or control-character credentials: 401 with WWW-Authenticate, and
    nothing of the (valid) batch is accepted."""
    good = ingest.tokens["acme:gateway"]
    credentials: dict[str, str | bytes] = {
        "expired key": f"Bearer {await _key(ingest, expired=True)}",
        "revoked key": f"Bearer {await _key(ingest, revoked=True)}",
        "truncated key": f"Bearer {good[:-1]}",
        "key with a tab inside": f"Bearer {good[:10]}\t{good[10:]}",
        "key with DEL inside": f"Bearer {good[:10]}\x7f{good[10:]}",
        "key with a NUL inside": f"Bearer {good[:10]}\x00{good[10:]}".encode(),
        "key with Latin-1 bytes": f"Bearer {good}\xe9".encode("latin-1"),
        "key with invalid UTF-8 bytes": f"Bearer {good}".encode() + b"\xff\xfe",
        "empty bearer": "Bearer ",
    }
    for name, value in credentials.items():
        resp = await ingest.client.post("/v1/events", json={"events": [event()]},
                                        headers={b"Authorization": value if isinstance(value, bytes)
                                                 else value.encode()})
        problem = _is_problem(resp, 401)
        assert resp.headers["www-authenticate"].startswith("Bearer"), name
        assert good not in problem["detail"], name
