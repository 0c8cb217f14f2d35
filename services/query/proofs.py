"""Proofs for auditors (scope ``proofs:read``): logs, checkpoints, entries, proofs and keys.

Everything of the ledger's is read through ``services.ledger.reader``, tenant-scoped by
row-level security. The entries listing adds, per entry, the digest of its stored payload (or
null when none is stored), so a verifier can tell a payload present, altered, or gone; the
erasure and retention events that explain a gone one are in the log itself.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request, Response

from sealtrail.core.entrypage import MEDIA_TYPE, encode_page
from sealtrail.core.quorum import WitnessPolicy
from sealtrail.core.sealing import DIGEST_PREFIX
from sealtrail.core.tlogproof import format_proof
from sealtrail.errors import InvalidInputError, NotFoundError, SealtrailError
from services.ledger.reader import MAX_ENTRIES_PER_READ
from services.query.deps import LogContentReader, PrincipalDep, ProofsReader, ServiceDep
from services.query.models import (
    CheckpointList,
    ConsistencyProof,
    EntryPage,
    ErasureEvents,
    InclusionProof,
    KeyList,
    LogList,
)
from services.query.responses import TEXT, json_response, problems
from services.query.service import ERASURE_RECEIPT_PURPOSE

router = APIRouter(tags=["proofs"])

MAX_SIZE = 2**63 - 1
Size = Annotated[int, Query(ge=0, le=MAX_SIZE)]
_NOTE: dict[int | str, dict[str, Any]] = {200: {"content": {TEXT: {}}, "description": "C2SP signed note"}}
_PROOF_FILE: dict[int | str, dict[str, Any]] = {
    200: {"content": {TEXT: {}}, "description": "C2SP tlog-proof file"}}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@asynccontextmanager
async def _sized(pointer: str) -> AsyncIterator[None]:
    """Point the ledger reader's refusal of a tree size at the query parameter that gave it."""
    try:
        yield
    except InvalidInputError as e:
        raise InvalidInputError(e.detail, pointer=pointer) from e


@router.get("/v1/logs", response_model=LogList, responses=problems(401, 403), summary="The tenant's logs")
async def list_logs(principal: ProofsReader, service: ServiceDep) -> Response:
    logs = await service.reader.logs(principal.tenant_id)
    return json_response({"logs": [{"log": x.log_id, "origin": x.origin, "size": x.size} for x in logs]})


@router.get("/v1/logs/{log}/checkpoint", response_class=Response,
            responses={**_NOTE, **problems(401, 403, 404)},
            summary="The latest signed checkpoint (text/plain)")
async def latest_checkpoint(log: str, principal: ProofsReader, service: ServiceDep) -> Response:
    """With witnesses configured, ``Sealtrail-Witness-Cosignatures`` counts the valid cosignatures of
    the configured witnesses on it, ``Sealtrail-Witness-Cosigners`` names them and
    ``Sealtrail-Witness-Quorum`` says how many make it witnessed."""
    cp = await service.reader.latest_checkpoint(principal.tenant_id, log)
    return Response(cp.note, media_type=TEXT, headers=_witness_headers(service.options.witnesses, cp.note))


def _witness_status(policy: WitnessPolicy | None, note: str) -> dict[str, Any] | None:
    """The configured witnesses that validly cosigned ``note``, the quorum, and whether it is reached."""
    if policy is None:
        return None
    try:
        names = list(policy.cosigners(note).names)
    except SealtrailError:  # a stored line under a witness's key that does not verify counts for nothing
        names = []
    return {"cosigners": names, "quorum": policy.quorum, "witnessed": len(names) >= policy.quorum}


def _witness_headers(policy: WitnessPolicy | None, note: str) -> dict[str, str] | None:
    status = _witness_status(policy, note)
    if status is None:
        return None
    return {"Sealtrail-Witness-Cosignatures": str(len(status["cosigners"])),
            "Sealtrail-Witness-Quorum": str(status["quorum"]),
            "Sealtrail-Witness-Cosigners": ", ".join(status["cosigners"])}


@router.get("/v1/logs/{log}/checkpoints", response_model=CheckpointList,
            responses=problems(400, 401, 403, 404),
            summary="Signed checkpoints with tree sizes in [from, to], oldest first")
async def list_checkpoints(
    log: str, principal: ProofsReader, service: ServiceDep,
    size_from: Annotated[int, Query(alias="from", ge=0, le=MAX_SIZE)] = 0,
    size_to: Annotated[int, Query(alias="to", ge=0, le=MAX_SIZE)] = MAX_SIZE,
) -> Response:
    cps = await service.reader.checkpoints(principal.tenant_id, log, size_from, size_to)
    full = len(cps) >= MAX_ENTRIES_PER_READ  # the reader returns at most this many
    after = cps[-1].size + 1 if full and cps and cps[-1].size < size_to else None
    policy = service.options.witnesses
    return json_response({"log": log, "next": after, "checkpoints": [
        {"size": c.size, "signed_at": c.signed_at.isoformat(), "note": c.note,
         "witnesses": _witness_status(policy, c.note)} for c in cps]})


_ENTRIES: dict[int | str, dict[str, Any]] = {200: {"content": {MEDIA_TYPE: {}}, "description": (
    "JSON by default; with `Accept: application/vnd.sealtrail.entries.v1` the binary page of "
    "sealtrail/core/entrypage.py (same facts, no base64)")}}


@router.get("/v1/logs/{log}/entries", response_model=EntryPage,
            responses={**_ENTRIES, **problems(400, 401, 403, 404)},
            summary="Entries [start, end) with chain values and payload presence")
async def list_entries(request: Request, log: str, principal: LogContentReader, service: ServiceDep,
                       start: Size, end: Size) -> Response:
    most = min(service.options.max_page, MAX_ENTRIES_PER_READ)
    if not start <= end or end - start > most:
        raise InvalidInputError(f"need start <= end and at most {most} entries", pointer="query:end")
    # One read: entries joined with their payloads, each payload's BLAKE3(nonce || ciphertext)
    # recomputed so an altered one shows.
    rows = await service.stores.investigations.entry_page(principal.tenant_id, log, start, end)
    if rows is None:
        raise NotFoundError("no such log in this tenant")
    if MEDIA_TYPE in request.headers.get("accept", ""):
        return Response(encode_page(rows), media_type=MEDIA_TYPE)
    items = [{"index": index, "entry": _b64(entry), "chain": _b64(chain), "payload_present": digest is not None,
              "payload_digest": None if digest is None else DIGEST_PREFIX + digest.hex()}
             for index, entry, chain, digest in rows]
    return json_response({"log": log, "start": start, "end": end, "entries": items})


@router.get("/v1/logs/{log}/proof/inclusion", response_model=InclusionProof,
            responses=problems(400, 401, 403, 404), summary="RFC 9162 inclusion proof")
async def inclusion(log: str, principal: ProofsReader, service: ServiceDep, index: Size, size: Size
                    ) -> Response:
    if index >= size:
        raise InvalidInputError("index must be below size", pointer="query:index")
    async with _sized("query:size"):
        proof = await service.reader.inclusion_proof(principal.tenant_id, log, index, size)
    return json_response({"log": log, "index": index, "size": size, "proof": [_b64(h) for h in proof]})


@router.get("/v1/logs/{log}/proof/consistency", response_model=ConsistencyProof,
            responses=problems(400, 401, 403, 404), summary="RFC 9162 consistency proof")
async def consistency(
    log: str, principal: ProofsReader, service: ServiceDep,
    size1: Annotated[int, Query(alias="from", ge=1, le=MAX_SIZE)],
    size2: Annotated[int, Query(alias="to", ge=1, le=MAX_SIZE)],
) -> Response:
    if size1 > size2:
        raise InvalidInputError("from must not exceed to", pointer="query:from")
    async with _sized("query:to"):
        proof = await service.reader.consistency_proof(principal.tenant_id, log, size1, size2)
    return json_response({"log": log, "from": size1, "to": size2, "proof": [_b64(h) for h in proof]})


@router.get("/v1/logs/{log}/erasures", response_model=ErasureEvents, responses=problems(401, 403, 404),
            summary="The log's erasure and retention events")
async def erasure_events(log: str, principal: LogContentReader, service: ServiceDep) -> Response:
    rows = await service.stores.investigations.erasure_events(principal.tenant_id, log)
    if rows is None:
        raise NotFoundError("no such log in this tenant")
    return json_response({"log": log, "events": [{"index": idx, "header": orjson.loads(entry)}
                                                 for idx, entry in rows]})


@router.get("/v1/events/{event_id}/tlog-proof", response_class=Response,
            responses={**_PROOF_FILE, **problems(400, 401, 403, 404)}, summary="Offline inclusion proof file")
async def tlog_proof(event_id: uuid.UUID, principal: ProofsReader, service: ServiceDep) -> Response:
    """The event's inclusion proof under the latest checkpoint that covers it. A gateway key
    reads only the proofs of the events its gateway sent: another's answers as a missing one.
    With witnesses configured, the checkpoint's witness headers are those of ``/checkpoint``."""
    call = await service.stores.investigations.call_by_event_id(principal.tenant_id, event_id,
                                                                with_payload=False)
    if call is None or not principal.reads_proof_of(call.found.header):
        raise NotFoundError("no such event in this tenant's logs")
    log, index = call.found.log_id, call.found.idx
    cp = await service.reader.latest_checkpoint(principal.tenant_id, log)
    if cp.size <= index:
        raise NotFoundError("the event is logged but no signed checkpoint covers it yet")
    proof = await service.reader.inclusion_proof(principal.tenant_id, log, index, cp.size)
    return Response(format_proof(index, proof, cp.note), media_type=TEXT,
                    headers=_witness_headers(service.options.witnesses, cp.note))


@router.get("/v1/keys", response_model=KeyList, responses=problems(401),
            summary="Published verifier keys with their validity windows (any valid API key)")
async def keys(_: PrincipalDep, service: ServiceDep) -> Response:
    """Public keys: auditors check checkpoints with them, DPOs their erasure receipts."""
    published = [{"purpose": k.purpose, "vkey": k.vkey, "not_before": k.not_before, "not_after": k.not_after}
                 for k in await service.reader.published_keys()]
    if not any(k["vkey"] == service.receipt_vkey for k in published):  # recorded on PostgreSQL already
        published.append({"purpose": ERASURE_RECEIPT_PURPOSE, "vkey": service.receipt_vkey,
                          "not_before": None, "not_after": None})
    return json_response({"keys": published})
