"""OTLP/HTTP answers, in the encoding of the request.

Success is 200 with an ``ExportTraceServiceResponse`` (``partial_success`` set when spans were
rejected); a failure is its HTTP status with a ``google.rpc.Status`` body, ``Retry-After`` on 429
and 503 (OTLP/HTTP, "Failures"). With the ``Sealtrail-Receipts`` request header the success answer
is JSON whatever the request's encoding, with the receipts beside ``partialSuccess``.
"""

from __future__ import annotations

import math
from typing import Any

import orjson
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceResponse,
)
from starlette.responses import Response

from sealtrail.errors import AuthenticationError, BackpressureError, SealtrailError
from sealtrail.infra.problems import PROBLEM_TABLE
from services.ingest.otlp.receiver import ExportResult

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
RECEIPTS_HEADER = "sealtrail-receipts"

# google.rpc.Code of each HTTP status answered.
_GRPC_CODES = {400: 3, 401: 16, 403: 7, 413: 8, 415: 3, 429: 8, 500: 13, 503: 14}


def encoding_of(content_type: str | None) -> str:
    """The answer's encoding for a request's ``Content-Type``: protobuf only when asked in protobuf."""
    media = (content_type or "").partition(";")[0].strip().lower()
    return PROTOBUF if media == PROTOBUF else JSON


def export_answer(result: ExportResult, encoding: str, *, receipts: bool) -> Response:
    rejected, message = len(result.rejected), result.message()
    if receipts:
        return Response(orjson.dumps(_with_receipts(result, rejected, message)), media_type=JSON)
    if encoding == PROTOBUF:
        response = ExportTraceServiceResponse()
        if rejected:
            response.partial_success.CopyFrom(ExportTracePartialSuccess(rejected_spans=rejected,
                                                                        error_message=message))
        return Response(response.SerializeToString(), media_type=PROTOBUF)
    body: dict[str, Any] = {}
    if rejected:
        body["partialSuccess"] = {"rejectedSpans": rejected, "errorMessage": message}
    return Response(orjson.dumps(body), media_type=JSON)


def _with_receipts(result: ExportResult, rejected: int, message: str) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if rejected:
        body["partialSuccess"] = {"rejectedSpans": rejected, "errorMessage": message}
    body["sealtrail"] = {
        "spans": result.spans, "skipped": result.skipped,
        "accepted": [{"trace_id": a.trace_id, "span_id": a.span_id, "event_id": a.accepted.event_id,
                      "log": a.accepted.log, "receipt": a.accepted.receipt} for a in result.accepted],
        "rejected": [{"position": r.position, "trace_id": r.trace_id, "span_id": r.span_id, "reason": r.reason}
                     for r in result.rejected],
    }
    return body


def status_of(error: SealtrailError) -> int:
    return next((status for kind, status, _, _ in PROBLEM_TABLE if isinstance(error, kind)), 500)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def rpc_status(code: int, message: str) -> bytes:
    """A protobuf ``google.rpc.Status`` with ``code`` (field 1) and ``message`` (field 2)."""
    text = message.encode("utf-8")
    return b"\x08" + _varint(code) + b"\x12" + _varint(len(text)) + text


def failure_answer(error: SealtrailError, encoding: str) -> Response:
    """The failure answer for an error: its status, a ``Status`` body, and the retry header."""
    status = status_of(error)
    message = str(getattr(error, "detail", None) or error) or type(error).__name__
    if status == 500:
        message = "the server failed to handle the request"
    code = _GRPC_CODES.get(status, 2)
    headers: dict[str, str] = {}
    if isinstance(error, BackpressureError):
        headers["Retry-After"] = str(max(1, math.ceil(error.retry_after)))
    if isinstance(error, AuthenticationError):
        headers["WWW-Authenticate"] = 'Bearer realm="sealtrail"'
    if encoding == PROTOBUF:
        return Response(rpc_status(code, message), status_code=status, media_type=PROTOBUF, headers=headers)
    return Response(orjson.dumps({"code": code, "message": message}), status_code=status, media_type=JSON,
                    headers=headers)
