"""``POST /v1/traces``: OTLP/HTTP trace exports, whose tool-call spans become events (docs/otlp.md).

Same keys (``Authorization: Bearer``, scope ``events:write``), limits and pipeline as
``POST /v1/events``; answers follow OTLP/HTTP (:mod:`services.ingest.otlp.answer`). Log lines and
metrics carry counts only, never a span's attributes.
"""

from __future__ import annotations

import logging
import time
import zlib
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response

from sealtrail.errors import InvalidInputError, SealtrailError, TooLargeError, UnsupportedMediaTypeError
from sealtrail.infra.auth import Scope
from services.ingest.otlp.answer import (
    JSON,
    PROTOBUF,
    RECEIPTS_HEADER,
    encoding_of,
    export_answer,
    failure_answer,
    status_of,
)
from services.ingest.otlp.receiver import ExportResult, TraceReceiver
from services.ingest.otlp.spans import Span, read_json, read_protobuf
from services.ingest.routes import BearerDoc, read_body

log = logging.getLogger("sealtrail.ingest")
router = APIRouter()


async def _receiver(request: Request) -> TraceReceiver:
    receiver: TraceReceiver = request.app.state.traces
    return receiver


ReceiverDep = Annotated[TraceReceiver, Depends(_receiver)]
_BODY = {"requestBody": {"required": True, "content": {
    PROTOBUF: {"schema": {"type": "string", "format": "binary",
                          "description": "opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest"}},
    JSON: {"schema": {"type": "object", "description": "ExportTraceServiceRequest in OTLP's JSON encoding"}}}}}
_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"description": text} for status, text in (
        (200, "ExportTraceServiceResponse in the request's encoding; partial_success names rejected spans"),
        (400, "The body is not an ExportTraceServiceRequest (google.rpc.Status)"),
        (401, "Missing or invalid API key"), (403, "The key's role lacks events:write"),
        (413, "Body over the limit, also once decompressed"), (415, "Not protobuf or JSON, or not gzip"),
        (429, "Too many batches in flight (Retry-After)"), (503, "Not acknowledged; nothing accepted (Retry-After)"))
}


@router.post("/v1/traces", responses=_RESPONSES, openapi_extra=_BODY, response_class=Response,
             summary="Receive an OTLP/HTTP trace export (tool-call spans become events)")
async def post_traces(request: Request, receiver: ReceiverDep, _: BearerDoc) -> Response:
    """Map each tool-call span to a ``tool_call`` event, seal and publish the accepted ones."""
    started = time.perf_counter()
    service = receiver.service
    encoding = encoding_of(request.headers.get("content-type"))
    status = 500
    try:
        principal = await service.authenticator.authenticate(request.headers.get("authorization"))
        principal.require(Scope.EVENTS_WRITE)
        spans = await _read_spans(request, service.options.max_body_bytes)
        result = await receiver.receive(principal, spans)
        response = export_answer(result, encoding, receipts=RECEIPTS_HEADER in request.headers)
        status = response.status_code
        _count(receiver, result)
        log.info("traces", extra={"tenant": principal.tenant_id, "key_id": principal.key_id,
                                  "spans": result.spans, "accepted": len(result.accepted),
                                  "rejected": len(result.rejected), "skipped": result.skipped,
                                  "ms": round((time.perf_counter() - started) * 1000, 1)})
        return response
    except SealtrailError as e:
        status = status_of(e)
        return failure_answer(e, encoding)
    finally:
        service.metrics.otlp_requests.labels(status=str(status)).inc()


def _count(receiver: TraceReceiver, result: ExportResult) -> None:
    spans = receiver.service.metrics.otlp_spans
    spans.labels(outcome="accepted").inc(len(result.accepted))
    spans.labels(outcome="rejected").inc(len(result.rejected))
    spans.labels(outcome="skipped").inc(result.skipped)


async def _read_spans(request: Request, limit: int) -> list[Span]:
    media = (request.headers.get("content-type") or "").partition(";")[0].strip().lower()
    if media not in (PROTOBUF, JSON):
        raise UnsupportedMediaTypeError(f"the body must be {PROTOBUF} or {JSON}", pointer="header:Content-Type")
    body = await read_body(request, limit)
    coding = (request.headers.get("content-encoding") or "identity").strip().lower()
    if coding == "gzip":
        body = gunzip(body, limit)
    elif coding != "identity":
        raise UnsupportedMediaTypeError("Content-Encoding must be gzip or identity",
                                        pointer="header:Content-Encoding")
    return read_protobuf(body) if media == PROTOBUF else read_json(body)


def gunzip(body: bytes, limit: int) -> bytes:
    """The gzip body decompressed, refused (413) past ``limit`` bytes without inflating further."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error:
        raise InvalidInputError("the body is not valid gzip", pointer="") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise TooLargeError(f"the body is over the limit of {limit} bytes once decompressed")
    if not inflater.eof:
        raise InvalidInputError("the gzip body is truncated", pointer="")
    return out
