"""Bad input the query API must answer with a 400 problem (never a 500 or a silent answer), run
the same against the PostgreSQL stack and the embedded SQLite one.

Each case names the role whose key sends it and the pointer the problem must carry. The cases
come from reviews that reproduced 500s (cursors, extreme times, unbounded sizes), silently
ignored parameters and bodies that repeat a member name.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

MARKER = "MARKER7731"
"""A value that no problem may repeat."""


def cursor(*fields: object) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(fields))).rstrip(b"=").decode()


@dataclass(frozen=True)
class Case:
    who: str
    method: str
    path: str
    pointer: str
    params: list[tuple[str, str]] | None = None
    body: bytes | None = None


def cases(log: str) -> list[Case]:
    inv, aud, dpo = "investigator", "auditor", "dpo"
    big = str(2**63)
    export = b'{"subject": "user:a@example.com", "purpose": "dsr", "cursor": "%s"}'
    return [
        Case(inv, "GET", "/v1/calls", "query:cursor", [("cursor", cursor("calls", None, log, 1))]),
        Case(inv, "GET", "/v1/calls", "query:cursor",
             [("cursor", cursor("calls", "2026-01-01T00:00:00+00:00", log, 2**63))]),
        Case(inv, "GET", "/v1/calls", "query:cursor", [("cursor", cursor("calls", "2026-01-01T00:00:00+00:00",
                                                                          log, -1))]),
        Case(inv, "GET", "/v1/calls", "query:cursor",
             [("cursor", cursor("calls", "0001-01-01T00:00:00+01:00", log, 1))]),
        Case(inv, "GET", "/v1/sessions/s-1", "query:cursor", [("cursor", cursor("session", None, log, 1))]),
        Case(inv, "GET", "/v1/calls", "query:from", [("from", "0001-01-01T00:00:00+01:00")]),
        Case(inv, "GET", "/v1/calls", "query:to", [("to", "9999-12-31T23:59:59-01:00")]),
        Case(inv, "GET", "/v1/analytics/tools", "query:to", [("to", "9999-12-31T23:30:00Z")]),
        Case(inv, "GET", "/v1/analytics/tools", "query:from", [("from", "0001-01-01T00:00:00+01:00")]),
        Case(inv, "GET", "/v1/analytics/drift", "query:to", [("to", "0001-01-01T05:00:00Z")]),
        Case(aud, "GET", f"/v1/logs/{log}/checkpoints", "query:from", [("from", "99999999999999999999999")]),
        Case(aud, "GET", f"/v1/logs/{log}/checkpoints", "query:to", [("to", big)]),
        Case(aud, "GET", f"/v1/logs/{log}/proof/consistency", "query:to", [("from", "1"), ("to", big)]),
        Case(dpo, "POST", "/v1/subjects/export", "/cursor",
             body=export % cursor("export", None, log, 2**64 - 1).encode()),
        Case(dpo, "POST", "/v1/subjects/export", "/cursor",
             body=export % cursor("export", "2026-01-01T00:00:00+00:00", log, 1).encode()),
        # unknown, misspelt and repeated parameters; values outside a closed set
        Case(inv, "GET", "/v1/calls", "query:agnet", [("agnet", MARKER)]),
        Case(inv, "GET", "/v1/calls", "query:agent_id", [("agent_id", MARKER)]),
        Case(inv, "GET", "/v1/calls", "query:", [(f"user:{MARKER}@example.com", "1")]),
        Case(inv, "GET", "/v1/calls", "query:agent", [("agent", MARKER), ("agent", "y")]),
        Case(inv, "GET", "/v1/calls", "query:tier", [("tier", MARKER)]),
        Case(inv, "GET", "/v1/calls", "query:decision", [("decision", "maybe")]),
        Case(inv, "GET", "/v1/calls", "query:type", [("type", "bogus")]),
        Case(inv, "GET", "/v1/analytics/tools", "query:agnet", [("agnet", MARKER)]),
        Case(aud, "GET", f"/v1/logs/{log}/entries", "query:start", [("start", "0"), ("start", "1"), ("end", "2")]),
        # bodies: repeated members anywhere, unknown members, not JSON
        Case(dpo, "POST", "/v1/subjects/export", "",
             body=b'{"subject": "user:a@example.com", "subject": "user:%s@example.com", "purpose": "dsr"}'
             % MARKER.encode()),
        Case(dpo, "POST", "/v1/subjects/erase", "",
             body=b'{"subject": "user:%s@example.com", "subject": "user:b@example.com", "request_ref": "R-1",'
                  b' "legal_basis": "gdpr.art17"}' % MARKER.encode()),
        Case(dpo, "PUT", "/v1/subjects/hold", "/x/0",
             body=b'{"subject": "user:a@example.com", "reason": "x", "x": [{"k": 1, "k": 2}]}'),
        Case(dpo, "POST", "/v1/subjects/export", "",
             body=b'{"subject": "user:a@example.com", "purpose": "dsr", "user:%s@example.com": 1}' % MARKER.encode()),
        Case(dpo, "POST", "/v1/subjects/export", "", body=b'{"subject": "%s' % MARKER.encode()),
    ]


async def check_cases(client: httpx.AsyncClient, auth: Callable[[str], Mapping[str, str]], log: str) -> None:
    """Every case is a 400 problem with its pointer that repeats no submitted value."""
    for case in cases(log):
        headers = {**auth(case.who), "Content-Type": "application/json"}
        params = httpx.QueryParams(tuple(case.params)) if case.params else None
        resp = await client.request(case.method, case.path, params=params, content=case.body,
                                    headers=headers)
        assert resp.status_code == 400, (case, resp.status_code, resp.text)
        problem: dict[str, Any] = resp.json()
        assert resp.headers["content-type"] == "application/problem+json", case
        assert problem["pointer"] == case.pointer, (case, problem)
        assert MARKER not in resp.text and "@example.com" not in resp.text, (case, problem)


async def check_no_echo(client: httpx.AsyncClient, auth: Callable[[str], Mapping[str, str]], log: str,
                        missing_event: str) -> None:
    """Problems about a log, an event or a size name none of them (a log's own size is fine)."""
    for who, path, params, status, echo in (
        ("auditor", f"/v1/logs/{MARKER}/checkpoint", None, 404, MARKER),
        ("auditor", f"/v1/logs/{MARKER}/erasures", None, 404, MARKER),
        ("auditor", f"/v1/logs/{log}/proof/inclusion", {"index": 0, "size": 987654321}, 400, "987654321"),
        ("auditor", f"/v1/events/{missing_event}/tlog-proof", None, 404, missing_event),
        ("investigator", f"/v1/calls/{missing_event}", None, 404, missing_event),
        ("investigator", "/v1/calls/not-a-uuid", None, 400, "`n`"),
    ):
        resp = await client.get(path, params=params, headers=auth(who))
        assert resp.status_code == status, (path, resp.text)
        assert echo not in resp.text, (path, resp.text)


async def check_methods(client: httpx.AsyncClient, auth: Callable[[str], Mapping[str, str]]) -> None:
    """A known path asked with the wrong method is a 405 problem with Allow; unknown paths are 404."""
    for method, path, allow in (("POST", "/v1/subjects/hold", {"PUT", "DELETE"}), ("DELETE", "/v1/calls", {"GET"}),
                                ("POST", "/v1/analytics/tools", {"GET"}), ("PUT", "/v1/subjects/export", {"POST"})):
        resp = await client.request(method, path, headers=auth("investigator"))
        assert resp.status_code == 405, (method, path, resp.text)
        assert {m.strip() for m in resp.headers["allow"].split(",")} >= allow, (path, resp.headers)
        assert resp.headers["content-type"] == "application/problem+json"
        assert resp.json()["type"].endswith("/method-not-allowed")
    for path in ("/v1/nothing", "/v1/analytics/nothing", "/nothing"):
        resp = await client.get(path, headers=auth("investigator"))
        assert resp.status_code == 404 and resp.headers["content-type"] == "application/problem+json", path


async def check_purpose_note(client: httpx.AsyncClient, auth: Callable[[str], Mapping[str, str]],
                             event_id: str) -> None:
    """A note that is not strict percent-encoded UTF-8 is refused before anything is revealed."""
    base = [(k.encode(), v.encode()) for k, v in auth("investigator").items()]
    for raw in (b"%ZZ-" + MARKER.encode(), b"50%-off", b"%4", b"\xff\xfe" + MARKER.encode(), b"caf\xc3\xa9", b"%FF%FE"):
        resp = await client.get(f"/v1/calls/{event_id}", params={"purpose": "incident"},
                                headers=[*base, (b"Sealtrail-Purpose-Note", raw)])
        assert resp.status_code == 400, (raw, resp.text)
        assert resp.json()["pointer"] == "header:Sealtrail-Purpose-Note" and MARKER not in resp.text
    good = await client.get(f"/v1/calls/{event_id}", params={"purpose": "incident"},
                            headers=[*base, (b"Sealtrail-Purpose-Note", b"ticket%20%C3%A9-42")])
    assert good.status_code == 200 and good.json()["access_event_id"], good.text
