"""Reading OTLP trace requests: protobuf and OTLP JSON give the same spans; frame errors are 400."""

from __future__ import annotations

import contextlib
import gzip
import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Status
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan

from sealtrail.errors import InvalidInputError, TooLargeError
from services.ingest.otlp.mapping import SpanRefused, is_tool_call, map_span
from services.ingest.otlp.spans import MAX_VALUE_DEPTH, NO_TIME, read_json, read_protobuf
from services.ingest.traces import gunzip

TRACE = bytes.fromhex("5b8efff798038103d269b633813fc60c")
SPAN = bytes.fromhex("eee19b7ec3c1b174")


def _kv(key: str, value: AnyValue) -> KeyValue:
    return KeyValue(key=key, value=value)


def protobuf_request() -> ExportTraceServiceRequest:
    attributes = [
        _kv("gen_ai.operation.name", AnyValue(string_value="execute_tool")),
        _kv("gen_ai.tool.name", AnyValue(string_value="lookup")),
        _kv("count", AnyValue(int_value=3)), _kv("ok", AnyValue(bool_value=True)),
        _kv("ratio", AnyValue(double_value=0.5)),
        _kv("list", AnyValue(array_value=ArrayValue(values=[AnyValue(string_value="a"), AnyValue(int_value=1)]))),
        _kv("map", AnyValue(kvlist_value=KeyValueList(values=[_kv("k", AnyValue(string_value="v"))]))),
    ]
    span = PbSpan(trace_id=TRACE, span_id=SPAN, name="execute_tool lookup", kind=PbSpan.SPAN_KIND_CLIENT,
                  start_time_unix_nano=1_700_000_000_000_000_001, end_time_unix_nano=1_700_000_000_500_000_000,
                  attributes=attributes, status=Status(code=Status.STATUS_CODE_ERROR, message="failed"))
    resource = Resource(attributes=[_kv("service.name", AnyValue(string_value="agent"))])
    return ExportTraceServiceRequest(resource_spans=[ResourceSpans(resource=resource,
                                                                   scope_spans=[ScopeSpans(spans=[span])])])


def json_request() -> dict[str, Any]:
    """The same request as the Collector writes it in OTLP JSON (hex ids, int64 as strings)."""
    return {"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "agent"}}]},
        "scopeSpans": [{"scope": {"name": "x"}, "spans": [{
            "traceId": TRACE.hex().upper(), "spanId": SPAN.hex(), "parentSpanId": "",
            "name": "execute_tool lookup", "kind": 3,
            "startTimeUnixNano": "1700000000000000001", "endTimeUnixNano": 1_700_000_000_500_000_000,
            "attributes": [
                {"key": "gen_ai.operation.name", "value": {"stringValue": "execute_tool"}},
                {"key": "gen_ai.tool.name", "value": {"stringValue": "lookup"}},
                {"key": "count", "value": {"intValue": "3"}}, {"key": "ok", "value": {"boolValue": True}},
                {"key": "ratio", "value": {"doubleValue": 0.5}},
                {"key": "list", "value": {"arrayValue": {"values": [{"stringValue": "a"}, {"intValue": 1}]}}},
                {"key": "map", "value": {"kvlistValue": {"values": [{"key": "k", "value": {"stringValue": "v"}}]}}},
            ],
            "status": {"code": 2, "message": "failed"},
        }]}],
    }]}


def test_protobuf_and_json_read_the_same_span() -> None:
    """Every field the mapping uses reads the same from both encodings."""
    (from_pb,) = read_protobuf(protobuf_request().SerializeToString())
    (from_json,) = read_json(orjson.dumps(json_request()))
    assert from_pb == from_json
    assert from_pb.trace_id == TRACE.hex() and from_pb.span_id == SPAN.hex()
    assert from_pb.attributes == {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup",
                                  "count": 3, "ok": True, "ratio": 0.5,
                                  "list": ["a", 1], "map": {"k": "v"}}
    assert (from_pb.status_code, from_pb.status_message, from_pb.kind) == (2, "failed", 3)
    assert from_pb.resource == {"service.name": "agent"}


def test_one_malformed_json_span_is_marked_and_its_neighbours_read() -> None:
    """A span whose attribute or time cannot be read carries a problem; the others are whole."""
    doc = json_request()
    spans = doc["resourceSpans"][0]["scopeSpans"][0]["spans"]
    marker = {"key": "mcp.method.name", "value": {"stringValue": "tools/call"}}
    bad = dict(spans[0], attributes=[marker, {"key": "x", "value": {"intValue": "NaN"}}], startTimeUnixNano="soon")
    doc["resourceSpans"][0]["scopeSpans"][0]["spans"] = [spans[0], bad, "not a span", spans[0]]
    read = read_json(orjson.dumps(doc))
    assert [s.problem is None for s in read] == [True, False, True, True]
    assert is_tool_call(read[1]) and read[1].start_ns == NO_TIME and read[1].position.endswith("spans[1]")
    assert not is_tool_call(read[2])  # not an object: no tool call can be seen in it, it is skipped


def test_other_spans_are_read_no_further() -> None:
    """A chat span's attributes (which may hold whole conversations) are not converted, in
    either encoding; it comes back empty, to be counted and skipped."""
    doc = json_request()
    attributes = doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"]
    attributes[0] = {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}}
    attributes.append({"key": "gen_ai.input.messages", "value": {"intValue": "not even an integer"}})
    (span,) = read_json(orjson.dumps(doc))
    assert (span.attributes, span.problem, is_tool_call(span)) == ({}, None, False)
    request = protobuf_request()
    request.resource_spans[0].scope_spans[0].spans[0].attributes[0].value.string_value = "chat"
    (span,) = read_protobuf(request.SerializeToString())
    assert (span.attributes, is_tool_call(span)) == ({}, False)


def test_values_nested_too_deep_mark_the_span() -> None:
    """Arrays nested past the limit are refused per span, in both encodings."""
    value: dict[str, Any] = {"stringValue": "x"}
    for _ in range(MAX_VALUE_DEPTH + 1):
        value = {"arrayValue": {"values": [value]}}
    doc = json_request()
    doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"].append({"key": "deep", "value": value})
    (span,) = read_json(orjson.dumps(doc))
    assert span.problem is not None and "deeper" in span.problem
    pb = AnyValue(string_value="x")
    for _ in range(MAX_VALUE_DEPTH + 1):
        pb = AnyValue(array_value=ArrayValue(values=[pb]))
    request = protobuf_request()
    request.resource_spans[0].scope_spans[0].spans[0].attributes.append(_kv("deep", pb))
    (span,) = read_protobuf(request.SerializeToString())
    assert span.problem is not None and "deeper" in span.problem


def test_integers_past_64_bits_are_read_exactly() -> None:
    """Not rounded to a float: the value is kept as sent, for validation to judge."""
    doc = json_request()
    attributes = doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"]
    attributes.append({"key": "gen_ai.tool.call.arguments", "value": {"kvlistValue": {"values": [
        {"key": "n", "value": {"doubleValue": 0}}]}}})
    body = orjson.dumps(doc).replace(b'"doubleValue":0', b'"doubleValue":123456789012345678901234567890')
    (span,) = read_json(body)
    assert span.attributes["gen_ai.tool.call.arguments"] == {"n": 123456789012345678901234567890}


@pytest.mark.parametrize("body", [b"\x0a\xff\xff", b"not protobuf at all \xff"])
def test_unreadable_protobuf_is_refused_whole(body: bytes) -> None:
    with pytest.raises(InvalidInputError, match="protobuf"):
        read_protobuf(body)


@pytest.mark.parametrize("body", [b"{", b"[]", b'{"resourceSpans": 5}', b'{"resourceSpans": [5]}',
                                  b"\xff\xfe"])
def test_unreadable_json_frames_are_refused_whole(body: bytes) -> None:
    """Not JSON, not an object, or resourceSpans not an array of objects: 400."""
    with pytest.raises(InvalidInputError):
        read_json(body)


def test_gunzip_stops_at_the_limit() -> None:
    """A gzip body inflates up to the limit; one byte more is 413 without inflating the rest."""
    assert gunzip(gzip.compress(b"a" * 1000), 1000) == b"a" * 1000
    with pytest.raises(TooLargeError):
        gunzip(gzip.compress(b"a" * 10_000_000), 1000)
    with pytest.raises(InvalidInputError):
        gunzip(b"not gzip", 1000)
    with pytest.raises(InvalidInputError):
        gunzip(gzip.compress(b"a" * 1000)[:-12], 1000)


def _map_all(spans: list[Any]) -> None:
    for span in spans:
        if is_tool_call(span):
            with contextlib.suppress(SpanRefused):
                map_span(span, ())


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
                         st.sampled_from(["resourceSpans", "scopeSpans", "spans", "attributes", "key", "value",
                                          "stringValue", "intValue", "arrayValue", "kvlistValue", "values",
                                          "traceId", "spanId", "startTimeUnixNano", "status", "resource"]),
                         inner, max_size=4), max_leaves=20)


@settings(max_examples=200, deadline=None)
@given(doc=_JSON)
def test_any_json_is_read_or_refused_as_a_whole(doc: Any) -> None:
    """Arbitrary JSON in OTLP's member names: spans, or InvalidInputError (400); never another error."""
    try:
        spans = read_json(json.dumps(doc).encode())
    except InvalidInputError:
        return
    _map_all(spans)


@settings(max_examples=200, deadline=None)
@given(body=st.binary(max_size=300))
def test_any_bytes_are_read_or_refused_as_a_whole(body: bytes) -> None:
    """Arbitrary bytes as protobuf: spans, or InvalidInputError (400); never another error."""
    try:
        spans = read_protobuf(body)
    except InvalidInputError:
        return
    _map_all(spans)
