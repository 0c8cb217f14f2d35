"""Data subjects, for DPOs: export (Art. 15), erasure (Art. 17), legal holds, erasure history.

Subject ids travel in request bodies (never in URLs, which proxies log), except as the optional
filter of the erasure history. The service normalises a subject id and derives its keyed
hashes with the tenant's index key; the id itself is stored nowhere and logged nowhere.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response

from sealtrail.core.erasure import REQUEST_REF_PATTERN, history_ref
from sealtrail.core.sealing import subject_ref
from sealtrail.errors import InvalidInputError, NotFoundError
from sealtrail.infra.emitter import new_event_id
from services.query import integrity
from services.query.cursor import Position, decode_cursor, encode_cursor
from services.query.deps import ServiceDep, SubjectEraserDep, SubjectExporter
from services.query.erasure import ErasureRequest
from services.query.models import (
    EraseRequest,
    ErasureHistory,
    ErasureRecordModel,
    ExportPage,
    ExportRequest,
    HoldReleaseRequest,
    HoldRequest,
)
from services.query.responses import json_response, problems

router = APIRouter(tags=["subjects"])


@router.post("/v1/subjects/export", response_model=ExportPage, responses=problems(400, 401, 403, 503),
             summary="Everything about a subject: headers and decrypted payloads (one page)")
async def export_subject(body: ExportRequest, principal: SubjectExporter, service: ServiceDep) -> Response:
    """The subject's entries from the subject index with their payloads opened. One ``access``
    event (action ``export``) per payload revealed is acknowledged before the answer."""
    tenant = principal.tenant_id
    ref = subject_ref(await service.index_keys.get(tenant), body.subject)
    listed, more = await service.stores.investigations.subject_calls(
        tenant, ref, decode_cursor("export", body.cursor), body.limit)
    shown, bad = integrity.split([c.found for c in listed], tenant=tenant,
                                 key_ids=[c.subject_key_id for c in listed])
    service.report_inconsistent(tenant, bad, route="export")
    kept = {(f.log_id, f.idx) for f in shown}
    calls = [c for c in listed if (c.found.log_id, c.found.idx) in kept]
    flags = {(d.log_id, d.idx): list(d.fields) for d in bad}
    opened = await service.opener.open_all(tenant, calls)
    export_ref = new_event_id()
    revealed = [str(c.found.header["event_id"]) for c, o in zip(calls, opened, strict=True)
                if o.state == "revealed"]
    await service.access.record(principal, purpose=body.purpose, targets=revealed, action="export",
                                note=body.note, export_ref=export_ref)
    entries = [{**c.found.as_json(), **o.as_json()} for c, o in zip(calls, opened, strict=True)]
    for e in entries:
        if (fields := flags.get((e["log"], e["index"]))) is not None:
            e["inconsistent"] = fields
    after = None
    if more:
        last = listed[-1].found
        after = encode_cursor("export", Position(None, last.log_id, last.idx))
    return json_response({"export_ref": export_ref, "entries": entries, "access_events": len(revealed),
                          "next": after, "inconsistent": [d.as_json() for d in bad]})


@router.post("/v1/subjects/erase", response_model=ErasureRecordModel,
             responses=problems(400, 401, 403, 409, 503),
             summary="Erase a subject (crypto-shredding) and get a signed receipt")
async def erase_subject(body: EraseRequest, principal: SubjectEraserDep, service: ServiceDep) -> Response:
    """Destroy the subject's key, delete the ciphertexts that needed it and its subject-index
    rows, log an ``erasure`` event and return the signed receipt. Refused (409) under legal hold.
    Repeating a request reference returns the same erasure."""
    record = await service.eraser.erase(principal, ErasureRequest(body.subject, body.request_ref,
                                                                  body.legal_basis))
    return json_response(record.as_json())


@router.put("/v1/subjects/hold", responses=problems(400, 401, 403), summary="Put a subject under legal hold")
async def set_hold(body: HoldRequest, principal: SubjectEraserDep, service: ServiceDep) -> Response:
    href = history_ref(await service.index_keys.get(principal.tenant_id), body.subject)
    await service.erasures.set_hold(principal.tenant_id, href, reason=body.reason, case_ref=body.case_ref,
                                    set_by=principal.key_id)
    return json_response({"hold": {"reason": body.reason, "case_ref": body.case_ref}})


@router.delete("/v1/subjects/hold", status_code=204, responses=problems(400, 401, 403, 404),
               summary="Release a subject's legal hold, with a reason")
async def clear_hold(body: HoldReleaseRequest, principal: SubjectEraserDep, service: ServiceDep) -> Response:
    """Release the hold; ``reason`` (a code) is required and kept with the hold as it was set
    (``released_holds`` of ``GET /v1/subjects/erasures``)."""
    if body.reason is None:
        raise InvalidInputError("releasing a legal hold needs a reason: a code such as litigation.closed",
                                pointer="/reason")
    href = history_ref(await service.index_keys.get(principal.tenant_id), body.subject)
    if not await service.erasures.clear_hold(principal.tenant_id, href, reason=body.reason,
                                             released_by=principal.key_id):
        raise NotFoundError("the subject is not under legal hold")
    return Response(status_code=204)


@router.get("/v1/subjects/erasures", response_model=ErasureHistory, responses=problems(400, 401, 403),
            summary="Erasure history: of one subject, one request, or the latest")
async def list_erasures(
    principal: SubjectEraserDep, service: ServiceDep,
    subject: Annotated[str | None, Query(max_length=320, description="data-subject id")] = None,
    request_ref: Annotated[str | None, Query(pattern=REQUEST_REF_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    tenant = principal.tenant_id
    href = history_ref(await service.index_keys.get(tenant), subject) if subject is not None else None
    records = await service.erasures.history(tenant, href=href, request_ref=request_ref, limit=limit)
    hold = await service.erasures.hold(tenant, href) if href is not None else None
    released = await service.erasures.released_holds(tenant, href, limit) if href is not None else []
    out, bad = [], []
    for r in records:
        body = r.as_json()
        body["log_index"] = None
        if r.event_id is not None:
            call = await service.stores.investigations.call_by_event_id(tenant, uuid.UUID(r.event_id),
                                                                        with_payload=False)
            if call is not None:
                body["log_index"] = call.found.idx
                d = integrity.check_erasure(call.found, r.as_json(), tenant=tenant)
                if d is not None:
                    body["inconsistent"] = list(d.fields)
                    bad.append(d)
        out.append(body)
    service.report_inconsistent(tenant, bad, route="erasures")
    return json_response({"erasures": out, "hold": hold, "released_holds": released,
                          "inconsistent": [d.as_json() for d in bad]})
