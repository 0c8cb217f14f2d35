"""Investigations: search calls, follow a session, open one call (and reveal its payload).

Every route needs ``calls:read``. Revealing a payload (``?purpose=``) also needs
``calls:reveal``, and the ``access`` event is acknowledged by the bus before the plaintext is
returned; without ``?purpose=`` no payload is ever read.
"""

from __future__ import annotations

import logging
import re
import typing
import uuid
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import unquote

from fastapi import APIRouter, Header, Path, Query, Response

from sealtrail.core.events import EVENT_MODELS
from sealtrail.core.fields import CODE_PATTERN
from sealtrail.core.sealing import subject_ref
from sealtrail.errors import IntegrityError, InvalidInputError, NotFoundError
from sealtrail.infra.auth import Principal, Scope
from services.query import integrity
from services.query.cursor import decode_cursor, encode_cursor
from services.query.deps import CallsReader, ServiceDep
from services.query.models import CallDetail, CallPage, SessionTimeline
from services.query.ports import CallFilter, Found
from services.query.responses import json_response, problems
from services.query.service import QueryService
from services.query.windows import utc_time

router = APIRouter(tags=["investigations"])
log = logging.getLogger("sealtrail.query")

ALL_TYPES = "all"
NOTE_HEADER = "Sealtrail-Purpose-Note"
# Strict percent-encoding: printable ASCII, every '%' starting an escape of two hex digits.
_PERCENT_ENCODED = re.compile(r"(?:[\x20-\x24\x26-\x7e]|%[0-9A-Fa-f]{2})*")


def header_values(field: str) -> tuple[str, ...]:
    """Every value the v1 event models allow in header field ``field`` (its Literal values)."""
    out: list[str] = []
    for model in EVENT_MODELS.values():
        info = model.model_fields.get(field)
        if info is None:
            continue
        for arm in (info.annotation, *typing.get_args(info.annotation)):
            if typing.get_origin(arm) is typing.Literal:
                out += [v for v in typing.get_args(arm) if v not in out]
    return tuple(out)


CHOICES: dict[str, tuple[str, ...]] = {
    "tier": header_values("tool_tier"), "decision": header_values("decision"),
    "status": header_values("status"), "type": (*EVENT_MODELS, ALL_TYPES),
}
"""The filters of ``GET /v1/calls`` with a closed set of values; any other value is a 400."""


def _choice(name: str, description: str | None = None) -> Any:
    return Query(min_length=1, max_length=64, description=description,
                 json_schema_extra={"enum": list(CHOICES[name])})


Text = Annotated[str | None, Query(min_length=1, max_length=256)]
Limit = Annotated[int, Query(ge=1, le=1000, description="results per page")]
Cursor = Annotated[str | None, Query(max_length=512, description="`next` of the previous page")]


def _checked(given: dict[str, str | None]) -> dict[str, str]:
    """The filters that were given, each of a closed set checked against it."""
    for name, value in given.items():
        if value is not None and name in CHOICES and value not in CHOICES[name]:
            raise InvalidInputError(f"{name} is one of {', '.join(CHOICES[name])}", pointer=f"query:{name}")
    return {k: v for k, v in given.items() if v is not None}


@router.get("/v1/calls", response_model=CallPage, responses=problems(400, 401, 403),
            summary="Search calls (newest first, keyset pages)")
async def list_calls(
    principal: CallsReader, service: ServiceDep,
    agent: Text = None, session: Text = None, server: Text = None, tool: Text = None,
    tier: Annotated[str | None, _choice("tier")] = None,
    decision: Annotated[str | None, _choice("decision")] = None,
    status: Annotated[str | None, _choice("status")] = None,
    type: Annotated[str, _choice("type", "event type, or 'all'")] = "tool_call",
    occurred_from: Annotated[datetime | None, Query(alias="from", description="occurred_at >= from")] = None,
    occurred_to: Annotated[datetime | None, Query(alias="to", description="occurred_at < to")] = None,
    subject: Annotated[str | None, Query(max_length=320, description="data-subject id; matched through "
                                         "the subject index by its keyed hash")] = None,
    cursor: Cursor = None, limit: Limit = 100,
) -> Response:
    """Calls of the caller's tenant matching every given filter."""
    equals = _checked({"agent": agent, "session": session, "server": server, "tool": tool, "tier": tier,
                       "decision": decision, "status": status, "type": type})
    if equals["type"] == ALL_TYPES:
        del equals["type"]
    start = None if occurred_from is None else utc_time(occurred_from, "from")
    end = None if occurred_to is None else utc_time(occurred_to, "to")
    after = decode_cursor("calls", cursor, pointer="query:cursor")
    ref = None
    if subject is not None:
        ref = subject_ref(await service.index_keys.get(principal.tenant_id), subject)
    f = CallFilter(equals, start, end, ref)
    tenant = principal.tenant_id
    found, more = await service.stores.investigations.search_calls(tenant, f, after, limit)
    following = encode_cursor("calls", found[-1].position) if more else None
    shown, bad = integrity.split(found, tenant=tenant, f=f)
    service.report_inconsistent(tenant, bad, route="calls")
    return json_response({"calls": integrity.flagged(shown, bad), "next": following,
                          "inconsistent": [d.as_json() for d in bad]})


@router.get("/v1/sessions/{session_id}", response_model=SessionTimeline,
            responses=problems(400, 401, 403, 404), summary="A session's timeline (oldest first)")
async def get_session(
    principal: CallsReader, service: ServiceDep,
    session_id: Annotated[str, Path(min_length=1, max_length=256)], cursor: Cursor = None, limit: Limit = 500,
) -> Response:
    """Every entry of the session, in time order, with the projector's summary of it. The summary
    is checked against the signed entries when this page holds the whole session."""
    investigations, tenant = service.stores.investigations, principal.tenant_id
    found, more = await investigations.session_timeline(tenant, session_id,
                                                        decode_cursor("session", cursor, pointer="query:cursor"), limit)
    summary = await investigations.session_summary(tenant, session_id)
    if not found and cursor is None and summary is None:
        raise NotFoundError("no such session")
    after = encode_cursor("session", found[-1].position) if more else None
    shown, bad = integrity.split(found, tenant=tenant, f=CallFilter({"session": session_id}))
    service.report_inconsistent(tenant, bad, route="session")
    body: dict[str, Any] = {"session_id": session_id, "summary": summary, "summary_checked": False,
                            "calls": integrity.flagged(shown, bad), "next": after,
                            "inconsistent": [d.as_json() for d in bad]}
    if cursor is None and not more and summary is not None:
        body["summary_checked"] = True
        wrong = integrity.summary_disagreements(summary, [r for r in shown if not _withheld(r, bad)])
        if wrong:
            body["summary_inconsistent"] = wrong
            service.metrics.integrity.labels(route="session-summary", withheld="false").inc()
            log.error("the sessions read model disagrees with the signed entries: tenant %s, fields %s",
                      tenant, ",".join(wrong))
    return json_response(body)


def _withheld(row: Found, bad: list[integrity.Disagreement]) -> bool:
    return any(d.withheld and (d.log_id, d.idx) == (row.log_id, row.idx) for d in bad)


def _note(header: str | None) -> str | None:
    """The note in the header, which MUST be strictly percent-encoded UTF-8 (a header arrives as
    Latin-1 text: raw non-ASCII bytes show as such characters and are refused, not guessed at)."""
    if header is None:
        return None
    try:
        if not _PERCENT_ENCODED.fullmatch(header):
            raise ValueError("not percent-encoded ASCII")
        return unquote(header, errors="strict")
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidInputError("the note must be percent-encoded UTF-8", pointer=f"header:{NOTE_HEADER}") from e


@router.get("/v1/calls/{event_id}", response_model=CallDetail, responses=problems(400, 401, 403, 404, 503),
            summary="One call; with ?purpose= and calls:reveal, its decrypted payload")
async def get_call(
    event_id: uuid.UUID, principal: CallsReader, service: ServiceDep,
    purpose: Annotated[str | None, Query(pattern=CODE_PATTERN, description="why the payload is revealed "
                                         "(a code); asks for the payload")] = None,
    note_header: Annotated[str | None, Header(alias=NOTE_HEADER, max_length=3000, description=(
        "free-text purpose, percent-encoded UTF-8, sealed into the access event (a header, so that "
        "no URL carries it)"))] = None,
) -> Response:
    """The call's header; with ``purpose`` its payload too, after an access event is logged."""
    note = _note(note_header)
    if note is not None and (purpose is None or len(note) > 1000):
        raise InvalidInputError("the note goes with a purpose and holds at most 1000 characters",
                                pointer=f"header:{NOTE_HEADER}")
    if purpose is not None:
        principal.require(Scope.CALLS_REVEAL)
    call = await service.stores.investigations.call_by_event_id(principal.tenant_id, event_id,
                                                                with_payload=purpose is not None)
    if call is None:
        raise NotFoundError("no such event in this tenant's logs")
    bad = integrity.check(call.found, tenant=principal.tenant_id)
    if bad is None and uuid.UUID(str(call.found.header.get("event_id"))) != event_id:
        bad = integrity.Disagreement(call.found.log_id, call.found.idx, ("event_id",), withheld=True)
    if bad is not None:
        service.report_inconsistent(principal.tenant_id, [bad], route="call")
        if bad.withheld:
            raise IntegrityError(f"the stored record of entry {bad.idx} of log {bad.log_id} disagrees with its "
                                 f"signed bytes ({', '.join(bad.fields)}); it is not shown", log_id=bad.log_id,
                                 index=bad.idx, fields=bad.fields)
    body = integrity.flagged([call.found], [] if bad is None else [bad])[0]
    if purpose is not None:
        body.update(await _reveal(service, principal, call, purpose, note))
    return json_response(body)


async def _reveal(service: QueryService, principal: Principal, call: Any, purpose: str,
                  note: str | None) -> dict[str, Any]:
    (opened,) = await service.opener.open_all(principal.tenant_id, [call])
    out = opened.as_json()
    if opened.state == "revealed":
        target = str(call.found.header["event_id"])
        (access_id,) = await service.access.record(principal, purpose=purpose, targets=[target],
                                                   action="reveal", note=note)
        out["access_event_id"] = access_id
    return out
