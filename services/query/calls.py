"""Investigations: search calls, follow a session, open one call (and reveal its payload).

Every route needs ``calls:read``. Revealing a payload (``?purpose=``) also needs
``calls:reveal``, and the ``access`` event is acknowledged by the bus before the plaintext is
returned; without ``?purpose=`` no payload is ever read.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import unquote

from fastapi import APIRouter, Header, Path, Query, Response

from sealtrail.core.fields import CODE_PATTERN
from sealtrail.core.sealing import subject_ref
from sealtrail.errors import InvalidInputError, NotFoundError
from sealtrail.infra.auth import Principal, Scope
from services.query.cursor import decode_cursor, encode_cursor
from services.query.deps import CallsReader, ServiceDep
from services.query.models import CallDetail, CallPage, SessionTimeline
from services.query.responses import json_response, problems
from services.query.search import CallFilter
from services.query.service import QueryService

router = APIRouter(tags=["investigations"])

Text = Annotated[str | None, Query(min_length=1, max_length=256)]
Limit = Annotated[int, Query(ge=1, le=1000, description="results per page")]
Cursor = Annotated[str | None, Query(max_length=512, description="`next` of the previous page")]
ALL_TYPES = "all"
NOTE_HEADER = "Sealtrail-Purpose-Note"


def _utc(t: datetime | None) -> datetime | None:
    if t is None or t.tzinfo is not None:
        return t
    return t.replace(tzinfo=UTC)


@router.get("/v1/calls", response_model=CallPage, responses=problems(400, 401, 403),
            summary="Search calls (newest first, keyset pages)")
async def list_calls(
    principal: CallsReader, service: ServiceDep,
    agent: Text = None, session: Text = None, server: Text = None, tool: Text = None,
    tier: Text = None, decision: Text = None, status: Text = None,
    type: Annotated[str, Query(max_length=64, description="event type, or 'all'")] = "tool_call",
    occurred_from: Annotated[datetime | None, Query(alias="from", description="occurred_at >= from")] = None,
    occurred_to: Annotated[datetime | None, Query(alias="to", description="occurred_at < to")] = None,
    subject: Annotated[str | None, Query(max_length=320, description="data-subject id; matched through "
                                         "the subject index by its keyed hash")] = None,
    cursor: Cursor = None, limit: Limit = 100,
) -> Response:
    """Calls of the caller's tenant matching every given filter."""
    given = {"agent": agent, "session": session, "server": server, "tool": tool, "tier": tier,
             "decision": decision, "status": status, "type": None if type == ALL_TYPES else type}
    ref = None
    if subject is not None:
        ref = subject_ref(await service.index_keys.get(principal.tenant_id), subject)
    equals = {k: v for k, v in given.items() if v is not None}
    f = CallFilter(equals, _utc(occurred_from), _utc(occurred_to), ref)
    found, more = await service.stores.investigations.search_calls(
        principal.tenant_id, f, decode_cursor("calls", cursor), limit)
    after = encode_cursor("calls", found[-1].position) if more else None
    return json_response({"calls": [c.as_json() for c in found], "next": after})


@router.get("/v1/sessions/{session_id}", response_model=SessionTimeline,
            responses=problems(400, 401, 403, 404), summary="A session's timeline (oldest first)")
async def get_session(
    principal: CallsReader, service: ServiceDep,
    session_id: Annotated[str, Path(min_length=1, max_length=256)], cursor: Cursor = None, limit: Limit = 500,
) -> Response:
    """Every entry of the session, in time order, with the projector's summary of it."""
    investigations = service.stores.investigations
    found, more = await investigations.session_timeline(principal.tenant_id, session_id,
                                                        decode_cursor("session", cursor), limit)
    summary = await investigations.session_summary(principal.tenant_id, session_id)
    if not found and cursor is None and summary is None:
        raise NotFoundError("no such session")
    after = encode_cursor("session", found[-1].position) if more else None
    return json_response({"session_id": session_id, "summary": summary,
                          "calls": [c.as_json() for c in found], "next": after})


def _note(header: str | None) -> str | None:
    try:
        return None if header is None else unquote(header, errors="strict")
    except UnicodeDecodeError as e:
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
        raise NotFoundError(f"no event {event_id} in this tenant's logs")
    body = call.found.as_json()
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
