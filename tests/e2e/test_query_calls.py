"""Investigations over the real stack: search filters, keyset pages, sessions, one call, reveal."""

from __future__ import annotations

from typing import Any

import orjson

from tests.e2e.conftest import Seed
from tests.support.query import QueryStack

INVESTIGATOR = "acme:investigator"


async def _all_pages(stack: QueryStack, params: dict[str, Any], who: str = INVESTIGATOR) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    cursor = None
    while True:
        resp = await stack.api.get("/v1/calls", params={**params, **({"cursor": cursor} if cursor else {})},
                                   headers=stack.auth(who))
        assert resp.status_code == 200, resp.text
        body = resp.json()
        calls += body["calls"]
        cursor = body["next"]
        if cursor is None:
            return calls


def _ids(calls: list[dict[str, Any]]) -> set[str]:
    return {c["header"]["event_id"] for c in calls}


def _expected(seed: Seed, **match: str) -> set[str]:
    return {e["event_id"] for e in seed.acme if all(e.get(k) == v for k, v in match.items())}


async def test_each_filter_returns_exactly_the_matching_calls(stack: QueryStack, seed: Seed) -> None:
    """Every filter (agent, session, server, tool, tier, decision, status) and a combination of
    them returns exactly the seed calls that match, and nothing of another tenant."""
    cases = [({"agent": "agent-1"}, {"agent_id": "agent-1"}), ({"session": "s-2"}, {"session_id": "s-2"}),
             ({"server": "srv-web"}, {"server_id": "srv-web"}), ({"tool": "db.query"}, {"tool_name": "db.query"}),
             ({"tier": "write"}, {"tool_tier": "write"}), ({"decision": "deny"}, {"decision": "deny"}),
             ({"status": "error"}, {"status": "error"}),
             ({"agent": "agent-2", "tool": "db.query", "status": "ok"},
              {"agent_id": "agent-2", "tool_name": "db.query", "status": "ok"})]
    for params, match in cases:
        got = await _all_pages(stack, params)
        assert _ids(got) == _expected(seed, **match), params
        assert all(c["log"] == "acme" and c["header"]["tenant"] == "acme" for c in got)


async def test_keyset_pages_cover_every_call_once_newest_first(stack: QueryStack, seed: Seed) -> None:
    """Pages of 7 walk all 30 seed calls exactly once, newest first, through opaque cursors."""
    got = await _all_pages(stack, {"limit": 7, "agent": "agent-1"}) + await _all_pages(
        stack, {"limit": 7, "agent": "agent-2"})
    assert len(got) == 30 and _ids(got) == {e["event_id"] for e in seed.acme}
    for agent in ("agent-1", "agent-2"):
        times = [c["header"]["occurred_at"] for c in got if c["header"]["agent_id"] == agent]
        assert times == sorted(times, reverse=True)


async def test_time_range_is_from_inclusive_to_exclusive(stack: QueryStack, seed: Seed) -> None:
    """``from``/``to`` bound occurred_at as [from, to)."""
    stamps = sorted(e["occurred_at"] for e in seed.acme)
    got = await _all_pages(stack, {"from": stamps[10], "to": stamps[20]})
    assert _ids(got) == {e["event_id"] for e in seed.acme if stamps[10] <= e["occurred_at"] < stamps[20]}
    assert len(got) == 10


async def test_subject_search_normalises_and_stays_in_the_tenant(stack: QueryStack, seed: Seed) -> None:
    """A subject id in any spelling of one person finds that person's calls, through the subject
    index, and never the calls of the same id in another tenant."""
    assert _ids(await _all_pages(stack, {"subject": " USER:alice@Example.COM "})) == set(seed.alice)
    assert _ids(await _all_pages(stack, {"subject": "user:Bob@example.com"})) == set(seed.bob)
    assert await _all_pages(stack, {"subject": "user:bob@example.com"}) == []  # local part is case-sensitive
    beta = await _all_pages(stack, {"subject": "user:alice@example.com"}, who="beta:investigator")
    assert _ids(beta) == {e["event_id"] for e in seed.beta}


async def test_session_timeline_is_in_time_order_with_a_summary(stack: QueryStack, seed: Seed) -> None:
    """A session's timeline lists its calls oldest first, pages by cursor, and has the
    projector's summary; an unknown session is a 404 problem."""
    expected = sorted((e["occurred_at"], e["event_id"]) for e in seed.acme if e["session_id"] == "s-0")
    resp = await stack.api.get("/v1/sessions/s-0", params={"limit": 4}, headers=stack.auth(INVESTIGATOR))
    body = resp.json()
    calls, cursor = body["calls"], body["next"]
    while cursor:
        more = await stack.api.get("/v1/sessions/s-0", params={"limit": 4, "cursor": cursor},
                                   headers=stack.auth(INVESTIGATOR))
        calls += more.json()["calls"]
        cursor = more.json()["next"]
    assert [c["header"]["event_id"] for c in calls] == [eid for _, eid in expected]
    assert body["summary"]["events"] == len(expected)
    missing = await stack.api.get("/v1/sessions/nope", headers=stack.auth(INVESTIGATOR))
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"


async def test_a_call_without_purpose_carries_no_payload_and_writes_nothing(stack: QueryStack, seed: Seed) -> None:
    """Opening a call without ``purpose`` returns its logged header only and appends nothing."""
    before = await stack.log_size("acme")
    target = seed.alice[0]
    resp = await stack.api.get(f"/v1/calls/{target}", headers=stack.auth(INVESTIGATOR))
    assert resp.status_code == 200
    body = resp.json()
    assert body["header"]["event_id"] == target and "payload" not in body and "select" not in resp.text
    assert await stack.accesses_since("acme", before, target) == []


async def test_reveal_returns_the_payload_after_logging_an_access_event(stack: QueryStack, seed: Seed) -> None:
    """With calls:reveal and a purpose, the payload sent comes back decrypted, and an access
    event naming the accessor key, purpose and target is in the log (its header holds no payload)."""
    sent = next(e for e in seed.acme if e["event_id"] == seed.alice[1])
    resp = await stack.api.get(f"/v1/calls/{sent['event_id']}", params={"purpose": "incident.review"},
                               headers={**stack.auth(INVESTIGATOR), "Sealtrail-Purpose-Note": "ticket%20INC-7"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["payload_state"] == "revealed" and body["payload"] == sent["payload"]
    access_id = body["access_event_id"]
    await stack.logged("acme", [access_id])
    row = await stack.pool.fetchrow("SELECT entry FROM entries WHERE event_id = $1::uuid", access_id)
    header = orjson.loads(row["entry"])
    assert header["type"] == "access" and header["action"] == "reveal"
    assert header["target_event_id"] == sent["event_id"] and header["purpose_code"] == "incident.review"
    assert header["accessor_key_id"] == stack.key_ids[INVESTIGATOR]
    assert b"select" not in row["entry"] and b"INC-7" not in row["entry"]
    again = await stack.api.get(f"/v1/calls/{access_id}", params={"purpose": "audit"},
                                headers=stack.auth(INVESTIGATOR))
    assert again.json()["payload"] == {"note": "ticket INC-7"}
    await stack.logged("acme", [again.json()["access_event_id"]])


async def test_without_calls_reveal_no_payload_is_ever_shown(stack: QueryStack, seed: Seed) -> None:
    """A DPO (calls:read, no calls:reveal) gets headers but a 403 for any reveal; nothing is logged."""
    before = await stack.log_size("acme")
    target = seed.alice[2]
    plain = await stack.api.get(f"/v1/calls/{target}", headers=stack.auth("acme:dpo"))
    assert plain.status_code == 200 and "payload" not in plain.json()
    denied = await stack.api.get(f"/v1/calls/{target}", params={"purpose": "curious"},
                                 headers=stack.auth("acme:dpo"))
    assert denied.status_code == 403 and "select" not in denied.text
    assert denied.json()["type"].endswith("/forbidden")
    assert await stack.accesses_since("acme", before, target) == []


async def test_other_tenants_events_look_missing(stack: QueryStack, seed: Seed) -> None:
    """beta's investigator gets 404 for acme's call, with or without reveal."""
    for params in ({}, {"purpose": "peek"}):
        resp = await stack.api.get(f"/v1/calls/{seed.acme[0]['event_id']}", params=params,
                                   headers=stack.auth("beta:investigator"))
        assert resp.status_code == 404


async def test_bad_input_is_a_problem_that_repeats_no_value(stack: QueryStack, seed: Seed) -> None:
    """A forged cursor, an out-of-range limit and a bad purpose code are 400 problems with a
    pointer; a missing key is 401 with WWW-Authenticate."""
    for params, pointer in (({"cursor": "bm90LWEtY3Vyc29y"}, "query:cursor"), ({"limit": 0}, "query:limit"),
                            ({"from": "yesterday-ish"}, "query:from")):
        resp = await stack.api.get("/v1/calls", params=params, headers=stack.auth(INVESTIGATOR))
        assert resp.status_code == 400, params
        assert resp.headers["content-type"] == "application/problem+json"
        assert resp.json()["pointer"] == pointer and "yesterday" not in resp.text
    bad = await stack.api.get(f"/v1/calls/{seed.acme[0]['event_id']}", params={"purpose": "Secret Alice"},
                              headers=stack.auth(INVESTIGATOR))
    assert bad.status_code == 400 and "Alice" not in bad.text
    anon = await stack.api.get("/v1/calls")
    assert anon.status_code == 401 and anon.headers["www-authenticate"].startswith("Bearer")


async def test_health_readiness_metrics_and_openapi(stack: QueryStack, seed: Seed) -> None:
    """/healthz and /readyz answer 200, /metrics counts requests by route template, and the
    OpenAPI document lists every query endpoint."""
    assert (await stack.api.get("/healthz")).json() == {"status": "ok"}
    ready = await stack.api.get("/readyz")
    assert ready.status_code == 200 and ready.json()["database"] is True
    metrics = (await stack.api.get("/metrics")).text
    assert 'sealtrail_query_requests_total{route="/v1/calls",status="200"}' in metrics
    assert "alice" not in metrics.lower()
    paths = set((await stack.api.get("/openapi.json")).json()["paths"])
    assert {"/v1/calls", "/v1/calls/{event_id}", "/v1/sessions/{session_id}", "/v1/logs",
            "/v1/logs/{log}/checkpoint", "/v1/logs/{log}/checkpoints", "/v1/logs/{log}/entries",
            "/v1/logs/{log}/proof/inclusion", "/v1/logs/{log}/proof/consistency", "/v1/logs/{log}/erasures",
            "/v1/events/{event_id}/tlog-proof", "/v1/keys", "/v1/subjects/export", "/v1/subjects/erase",
            "/v1/subjects/hold", "/v1/subjects/erasures"} <= paths
