"""OTLP/HTTP answers: statuses, retry headers and google.rpc.Status bodies in the request's encoding."""

from __future__ import annotations

import orjson
import pytest
from google.rpc.status_pb2 import Status  # type: ignore[import-untyped]  # googleapis-common-protos, untyped
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from sealtrail.errors import (
    AuthenticationError,
    BackpressureError,
    InvalidInputError,
    PermissionDeniedError,
    SealtrailError,
    TooLargeError,
    UnavailableError,
    UnsupportedMediaTypeError,
)
from services.ingest.otlp.answer import JSON, PROTOBUF, encoding_of, export_answer, failure_answer, rpc_status
from services.ingest.otlp.receiver import MAX_MESSAGES, ExportResult, SpanRejection


@pytest.mark.parametrize(("error", "status", "code", "retry_after"), [
    (InvalidInputError("the body is not a protobuf ExportTraceServiceRequest"), 400, 3, None),
    (AuthenticationError("no API key"), 401, 16, None),
    (PermissionDeniedError("role auditor lacks scope events:write"), 403, 7, None),
    (TooLargeError("body over the limit"), 413, 8, None),
    (UnsupportedMediaTypeError("the body must be application/x-protobuf or application/json"), 415, 3, None),
    (BackpressureError("too many batches in flight", retry_after=0.4), 429, 8, "1"),
    (UnavailableError("Kafka did not acknowledge", retry_after=2.5), 503, 14, "3"),
    (SealtrailError("something unmapped"), 500, 13, None),
])
@pytest.mark.parametrize("encoding", [PROTOBUF, JSON])
def test_failures_carry_a_status_in_the_request_encoding(error: SealtrailError, status: int, code: int,
                                                         retry_after: str | None, encoding: str) -> None:
    """Each error is its HTTP status with a google.rpc.Status (protobuf or JSON) naming the reason;
    429 and 503 tell the exporter when to retry, in whole seconds; 401 names the scheme."""
    response = failure_answer(error, encoding)
    assert response.status_code == status and response.media_type == encoding
    assert response.headers.get("retry-after") == retry_after
    assert ("www-authenticate" in response.headers) == (status == 401)
    body = bytes(response.body)
    if encoding == PROTOBUF:
        decoded = Status.FromString(body)
        got_code, message = decoded.code, decoded.message
    else:
        parsed = orjson.loads(body)
        got_code, message = parsed["code"], parsed["message"]
    assert got_code == code
    assert message == ("the server failed to handle the request" if status == 500 else str(error))


def test_rpc_status_is_the_protobuf_message() -> None:
    """The hand-written encoding reads back as google.rpc.Status, long messages included."""
    text = "é" * 300
    assert Status.FromString(rpc_status(14, text)) == Status(code=14, message=text)


def test_success_answers_partial_success_only_when_spans_were_rejected() -> None:
    """No rejection: an empty response; rejections: their count and the first reasons, in the
    request's encoding."""
    clean = ExportResult(spans=3, skipped=3)
    assert bytes(export_answer(clean, PROTOBUF, receipts=False).body) == b""
    assert orjson.loads(bytes(export_answer(clean, JSON, receipts=False).body)) == {}
    reason = "the span ends before it starts"
    rejected = ExportResult(spans=12, rejected=[
        SpanRejection(f"resourceSpans[0].scopeSpans[0].spans[{i}]", "ab" * 16, "cd" * 8, reason) for i in range(12)])
    answer = ExportTraceServiceResponse.FromString(bytes(export_answer(rejected, PROTOBUF, receipts=False).body))
    assert answer.partial_success.rejected_spans == 12
    assert answer.partial_success.error_message.count("ends before it starts") == MAX_MESSAGES
    assert answer.partial_success.error_message.endswith("and 2 more")
    as_json = orjson.loads(bytes(export_answer(rejected, JSON, receipts=False).body))
    assert as_json["partialSuccess"]["rejectedSpans"] == 12


def test_receipts_make_the_answer_json_whatever_the_request() -> None:
    """With Sealtrail-Receipts a protobuf request gets JSON with the accepted and rejected spans."""
    rejected = ExportResult(spans=1, rejected=[SpanRejection("resourceSpans[0].scopeSpans[0].spans[0]", "", "", "x")])
    response = export_answer(rejected, PROTOBUF, receipts=True)
    body = orjson.loads(bytes(response.body))
    assert response.media_type == JSON and body["sealtrail"]["accepted"] == []
    assert body["sealtrail"]["rejected"][0]["reason"] == "x" and body["partialSuccess"]["rejectedSpans"] == 1


def test_the_answer_encoding_follows_the_content_type() -> None:
    assert encoding_of("application/x-protobuf") == PROTOBUF
    assert encoding_of("Application/X-Protobuf; charset=binary") == PROTOBUF
    assert encoding_of("application/json; charset=utf-8") == JSON
    assert encoding_of(None) == JSON and encoding_of("text/plain") == JSON
