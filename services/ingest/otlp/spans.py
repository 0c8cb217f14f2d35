"""Reading an OTLP ``ExportTraceServiceRequest`` into plain :class:`Span` values.

Two encodings (OTLP/HTTP): binary protobuf, read with ``opentelemetry-proto``, and OTLP's JSON
(lowerCamelCase member names, trace and span ids as hex strings, 64-bit integers as numbers or
decimal strings, enums as integers). Both give the same :class:`Span` values.

Only the frame is judged here: a body that is not the message at all raises
:class:`InvalidInputError` (400). A span that is not a tool call (:data:`TOOL_MARKERS`) is
returned empty, its attributes never read, to be counted and skipped. What is wrong with a
tool-call span (an id of the wrong length, a time that is not a number) is left for
:mod:`.mapping` to judge. No message repeats a value from the body.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from sealtrail.errors import InvalidInputError

TOOL_MARKERS = {"gen_ai.operation.name": "execute_tool", "mcp.method.name": "tools/call"}
"""A span is a tool call when one of these attributes has its value (docs/otlp.md)."""
MAX_VALUE_DEPTH = 32
"""Deepest nesting of array and key-value-list attribute values read (deeper: the span is bad)."""
NO_TIME = -1
"""A start or end time that could not be read as an unsigned 64-bit number of nanoseconds."""
_U64 = 2**64


class AttributeTooDeep(ValueError):
    """An attribute value nests arrays or key-value lists past :data:`MAX_VALUE_DEPTH`."""


Attributes = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Span:
    """One span as sent, with its resource's attributes.

    Ids are lowercase hex of the bytes sent (protobuf) or the text sent, lowercased (JSON); their
    length and form are not checked here. ``problem`` names what could not be read (then the
    attributes may be incomplete), for :mod:`.mapping` to refuse the span with if it is a tool call.
    """

    trace_id: str
    span_id: str
    name: str
    kind: int
    start_ns: int
    end_ns: int
    status_code: int
    status_message: str
    attributes: Attributes
    resource: Attributes
    position: str
    """Where the span is in the request: ``resourceSpans[r].scopeSpans[s].spans[i]``."""
    problem: str | None = None


def _position(r: int, s: int, i: int) -> str:
    return f"resourceSpans[{r}].scopeSpans[{s}].spans[{i}]"


# --- protobuf ----------------------------------------------------------------------------------


def _any_value(value: AnyValue, depth: int) -> Any:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "int_value":
        return value.int_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "double_value":
        return value.double_value
    if depth >= MAX_VALUE_DEPTH:
        raise AttributeTooDeep
    if kind == "array_value":
        return [_any_value(v, depth + 1) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _any_value(kv.value, depth + 1) for kv in value.kvlist_value.values}
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode("ascii")
    return None


def _pb_attributes(pairs: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    pair: KeyValue
    for pair in pairs:
        value = pair.value
        # Strings are nearly every attribute: read them without a call (each call costs ~10%).
        out[pair.key] = value.string_value if value.WhichOneof("value") == "string_value" else _any_value(value, 1)
    return out


def _pb_tool_attributes(pairs: Any) -> dict[str, Any] | None:
    """The attributes of a tool-call span; None for another span, whose values are never read
    (a model call's attributes may hold whole conversations)."""
    held = []
    tool = False
    for pair in pairs:
        key, value = pair.key, pair.value
        marker = TOOL_MARKERS.get(key)
        if marker is not None and value.string_value == marker:
            tool = True
        held.append((key, value))
    if not tool:
        return None
    return {key: value.string_value if value.WhichOneof("value") == "string_value" else _any_value(value, 1)
            for key, value in held}


def _skipped(position: str, resource: Attributes) -> Span:
    """A span that is not a tool call, read no further: it is only counted."""
    return Span("", "", "", 0, NO_TIME, NO_TIME, 0, "", {}, resource, position)


def read_protobuf(body: bytes) -> list[Span]:
    """The spans of a binary protobuf ``ExportTraceServiceRequest``."""
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except (DecodeError, RecursionError):
        raise InvalidInputError("the body is not a protobuf ExportTraceServiceRequest", pointer="") from None
    spans: list[Span] = []
    for r, rs in enumerate(request.resource_spans):
        try:
            resource, resource_problem = _pb_attributes(rs.resource.attributes), None
        except AttributeTooDeep:
            resource, resource_problem = {}, _too_deep("a resource attribute")
        for s, ss in enumerate(rs.scope_spans):
            for i, span in enumerate(ss.spans):
                problem = resource_problem
                try:
                    attributes = _pb_tool_attributes(span.attributes)
                except AttributeTooDeep:
                    attributes, problem = dict(TOOL_MARKERS), _too_deep("an attribute")
                if attributes is None:
                    spans.append(_skipped(_position(r, s, i), resource))
                    continue
                spans.append(Span(span.trace_id.hex(), span.span_id.hex(), span.name, span.kind,
                                  span.start_time_unix_nano, span.end_time_unix_nano, span.status.code,
                                  span.status.message, attributes, resource, _position(r, s, i), problem))
    return spans


def _too_deep(what: str) -> str:
    return f"{what} nests arrays or lists deeper than {MAX_VALUE_DEPTH} levels"


# --- JSON --------------------------------------------------------------------------------------


class _BadSpan(ValueError):
    """One span's JSON does not have the OTLP shape (the message says where, without values)."""


def _member(obj: Mapping[str, Any], camel: str, snake: str) -> Any:
    value = obj.get(camel)
    return obj.get(snake) if value is None else value


def _list(obj: Mapping[str, Any], camel: str, snake: str, where: str) -> list[Any]:
    value = _member(obj, camel, snake)
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidInputError(f"{where}.{camel} must be an array", pointer="")
    return value


def _object(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise InvalidInputError(f"{where} must be an object", pointer="")
    return value


def _json_int(value: Any) -> int | None:
    """A 64-bit integer as OTLP JSON writes it: a number or a decimal string."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isascii() and value.lstrip("-").isdigit():
        return int(value)
    return None


def _json_value(value: Any, depth: int) -> Any:
    if not isinstance(value, dict):
        raise _BadSpan("an attribute value is not an AnyValue object")
    for key, inner in value.items():
        if key in ("stringValue", "string_value", "boolValue", "bool_value", "doubleValue", "double_value"):
            return inner
        if key in ("intValue", "int_value"):
            number = _json_int(inner)
            if number is None:
                raise _BadSpan("an intValue is not an integer")
            return number
        if key in ("bytesValue", "bytes_value"):
            return inner
        if depth >= MAX_VALUE_DEPTH:
            raise _BadSpan(_too_deep("an attribute"))
        if key in ("arrayValue", "array_value"):
            items = _member(inner, "values", "values") if isinstance(inner, dict) else None
            return [_json_value(v, depth + 1) for v in (items or [])]
        if key in ("kvlistValue", "kvlist_value"):
            items = _member(inner, "values", "values") if isinstance(inner, dict) else None
            return _json_attributes(items or [], depth + 1)
    return None


def _json_attributes(pairs: Any, depth: int = 1) -> dict[str, Any]:
    if not isinstance(pairs, list):
        raise _BadSpan("attributes must be an array")
    out: dict[str, Any] = {}
    for pair in pairs:
        if not isinstance(pair, dict) or not isinstance(pair.get("key"), str):
            raise _BadSpan("an attribute is not a {key, value} object")
        out[pair["key"]] = _json_value(pair.get("value", {}), depth)
    return out


def _hex_id(value: Any) -> str:
    return value.lower() if isinstance(value, str) else ""


def _json_is_tool(pairs: Any) -> bool:
    """Whether raw JSON attributes hold a tool-call marker (:data:`TOOL_MARKERS`)."""
    for pair in pairs if isinstance(pairs, list) else ():
        key = pair.get("key") if isinstance(pair, dict) else None
        marker = TOOL_MARKERS.get(key) if isinstance(key, str) else None
        value = pair.get("value") if marker is not None else None
        if isinstance(value, dict) and _member(value, "stringValue", "string_value") == marker:
            return True
    return False


def _json_span(span: Any, resource: Attributes, position: str) -> Span:
    raw_attributes = span.get("attributes", []) if isinstance(span, dict) else None
    if not isinstance(span, dict) or not _json_is_tool(raw_attributes):
        return _skipped(position, resource)
    problem = None
    try:
        attributes = _json_attributes(raw_attributes)
    except _BadSpan as e:
        attributes, problem = dict(TOOL_MARKERS), str(e)
    status_member = span.get("status")
    status: Mapping[str, Any] = status_member if isinstance(status_member, dict) else {}
    start = _json_int(_member(span, "startTimeUnixNano", "start_time_unix_nano"))
    end = _json_int(_member(span, "endTimeUnixNano", "end_time_unix_nano"))
    kind = _json_int(span.get("kind", 0))
    code = _json_int(status.get("code", 0))
    message = status.get("message", "")
    name = span.get("name", "")
    return Span(
        _hex_id(_member(span, "traceId", "trace_id")), _hex_id(_member(span, "spanId", "span_id")),
        name if isinstance(name, str) else "", kind if kind is not None else 0,
        start if start is not None and 0 <= start < _U64 else NO_TIME,
        end if end is not None and 0 <= end < _U64 else NO_TIME,
        code if code is not None else 0, message if isinstance(message, str) else "",
        attributes, resource, position, problem)


def _json_resource(rs: Mapping[str, Any], where: str) -> tuple[Attributes, str | None]:
    resource = rs.get("resource") or {}
    try:
        return _json_attributes(_object(resource, f"{where}.resource").get("attributes", [])), None
    except _BadSpan as e:
        return {}, f"its resource: {e}"


def _json_spans(doc: Mapping[str, Any]) -> Iterator[Span]:
    for r, rs in enumerate(_list(doc, "resourceSpans", "resource_spans", "the body")):
        where = f"resourceSpans[{r}]"
        rs = _object(rs, where)
        resource, resource_problem = _json_resource(rs, where)
        for s, ss in enumerate(_list(rs, "scopeSpans", "scope_spans", where)):
            ss = _object(ss, f"{where}.scopeSpans[{s}]")
            for i, raw in enumerate(_list(ss, "spans", "spans", f"{where}.scopeSpans[{s}]")):
                span = _json_span(raw, resource, _position(r, s, i))
                if resource_problem and span.problem is None:
                    span = _with_problem(span, resource_problem)
                yield span


def _with_problem(span: Span, problem: str) -> Span:
    return Span(span.trace_id, span.span_id, span.name, span.kind, span.start_ns, span.end_ns, span.status_code,
                span.status_message, span.attributes, span.resource, span.position, problem)


def read_json(body: bytes) -> list[Span]:
    """The spans of an OTLP JSON ``ExportTraceServiceRequest``."""
    try:
        # The standard library's reader keeps every integer exact (orjson makes a float of one past
        # 64 bits, which would alter a payload); validation refuses those beyond 2^53 per span.
        doc = json.loads(body)
    except (ValueError, RecursionError):
        raise InvalidInputError("the body is not valid JSON (UTF-8)", pointer="") from None
    return list(_json_spans(_object(doc, "the body")))
