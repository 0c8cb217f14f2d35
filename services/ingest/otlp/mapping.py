"""From an OTLP span to a Sealtrail ``tool_call`` event (docs/otlp.md documents every field).

A span is a tool call when it is a GenAI tool execution (``gen_ai.operation.name =
execute_tool``) or an MCP ``tools/call`` (``mcp.method.name = tools/call``, client or server
side). Every other span is skipped (:func:`is_tool_call`). A tool-call span becomes an event as a
gateway would submit it to ``POST /v1/events``, then goes through the same validation, sealing and
receipts; this module only maps, and refuses (:class:`SpanRefused`) what cannot be mapped.

The event id is derived from the trace and span ids (:func:`span_event_id`), so an exporter that
sends the same span again gets the same id and the ledger keeps one entry. Pure: no I/O.
"""

from __future__ import annotations

import functools
import hashlib
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sealtrail.errors import InvalidInputError
from services.ingest.otlp.spans import NO_TIME, TOOL_MARKERS, Span

TOOL_OPERATION = TOOL_MARKERS["gen_ai.operation.name"]
MCP_TOOLS_CALL = TOOL_MARKERS["mcp.method.name"]
STATUS_ERROR = 2
"""``Status.STATUS_CODE_ERROR``."""
SPAN_KIND_SERVER = 2
EVENT_ID_CONTEXT = b"sealtrail.dev/otlp-span-event-id/v1\n"
DECISIONS = frozenset({"allow", "deny", "step_up", "observe"})
LOCAL_SERVER = "local"
"""``server_id`` of a GenAI tool call that names no server (a function the agent ran itself)."""
UNKNOWN_SERVER = "unknown"
"""``server_id`` of an MCP client's tool call whose span names no server."""
DEFAULT_SUBJECT_RULES = "user=enduser.id"

_TRACE_ID = re.compile(r"(?!0{32})[0-9a-f]{32}")
_SPAN_ID = re.compile(r"(?!0{16})[0-9a-f]{16}")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]{0,31}")


class SpanRefused(ValueError):
    """A tool-call span that cannot become an event; the message says why, without its values."""


@dataclass(frozen=True, slots=True)
class SubjectRule:
    """Name the subject ``<scheme>:<value>`` when the span (or its resource) has ``attribute``."""

    scheme: str
    attribute: str


def parse_subject_rules(text: str) -> tuple[SubjectRule, ...]:
    """``scheme=attribute`` pairs separated by commas (``user=enduser.id,customer=app.customer_id``);
    an empty text names no rule. Raises :class:`InvalidInputError` for a malformed rule."""
    rules = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        scheme, sep, attribute = (x.strip() for x in part.partition("="))
        if not sep or not _SCHEME.fullmatch(scheme) or not attribute:
            raise InvalidInputError(f"subject rule {part!r} is not 'scheme=attribute' (a scheme of letters, "
                                    "digits, '+', '.', '-', starting with a letter)")
        rules.append(SubjectRule(scheme, attribute))
    return tuple(rules)


@dataclass(frozen=True, slots=True)
class MappedSpan:
    """The event of one tool-call span, and which OTLP field each header field came from."""

    event: dict[str, Any]
    sources: Mapping[str, str]


def is_tool_call(span: Span) -> bool:
    return any(span.attributes.get(name) == value for name, value in TOOL_MARKERS.items())


_VERSION_MASK = ~(0xF << 76) & (2**128 - 1)
_VARIANT_MASK = ~(0x3 << 62) & (2**128 - 1)
_VERSION_7 = 0x7 << 76
_VARIANT_RFC = 0x2 << 62


def span_event_id(trace_id: str, span_id: str) -> str:
    """The event id of a span: ``SHA-256(context || trace id bytes || span id bytes)``, first 16
    bytes, with the UUID version set to 7 and the variant to RFC 9562's, in 8-4-4-4-12 form."""
    digest = hashlib.sha256(EVENT_ID_CONTEXT + bytes.fromhex(trace_id + span_id)).digest()
    n = int.from_bytes(digest[:16], "big") & _VERSION_MASK & _VARIANT_MASK | _VERSION_7 | _VARIANT_RFC
    h = f"{n:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@functools.lru_cache(maxsize=4096)
def _utc_second(seconds: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS`` of a Unix second (the spans of one export share a few seconds)."""
    t = time.gmtime(seconds)
    return f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"


def _first(span: Span, names: tuple[tuple[str, str], ...]) -> tuple[str, str] | None:
    """The first of (``span``|``resource``, attribute) that holds a non-empty string: (value, source)."""
    for where, name in names:
        value = (span.attributes if where == "span" else span.resource).get(name)
        if isinstance(value, str) and value:
            return value, name if where == "span" else f"resource {name}"
        if value is not None and not isinstance(value, str):
            raise SpanRefused(f"attribute {name} must be a string")
    return None


def _tool_name(span: Span) -> tuple[str, str]:
    found = _first(span, (("span", "gen_ai.tool.name"),))
    if found:
        return found
    # MCP instrumentations name the span "{mcp.method.name} {tool}" (the MCP conventions); some
    # omit gen_ai.tool.name and put a prefix before (the mcp Python SDK's client: "MCP send ...").
    _, sep, tool = span.name.partition(MCP_TOOLS_CALL + " ")
    if span.attributes.get("mcp.method.name") == MCP_TOOLS_CALL and sep and tool.strip():
        return tool.strip(), "span name"
    raise SpanRefused("a tool call without a tool name (gen_ai.tool.name)")


def _server(span: Span) -> tuple[str, str]:
    found = _first(span, (("span", "sealtrail.server.id"), ("span", "server.address"),
                          ("resource", "sealtrail.server.id")))
    if found:
        return found
    if span.kind == SPAN_KIND_SERVER:
        service = _first(span, (("resource", "service.name"),))
        if service:
            return service
    if span.attributes.get("mcp.method.name") == MCP_TOOLS_CALL:
        return UNKNOWN_SERVER, "default"
    return LOCAL_SERVER, "default"


def _agent(span: Span) -> tuple[str, str]:
    found = _first(span, (("span", "gen_ai.agent.name"), ("span", "gen_ai.agent.id"),
                          ("resource", "service.name")))
    if found is None:
        raise SpanRefused("no agent: neither gen_ai.agent.name, gen_ai.agent.id nor the resource's service.name")
    return found


def _check_ids(span: Span) -> None:
    if not _TRACE_ID.fullmatch(span.trace_id):
        raise SpanRefused("traceId must be 16 bytes (32 hex digits), not all zero")
    if not _SPAN_ID.fullmatch(span.span_id):
        raise SpanRefused("spanId must be 8 bytes (16 hex digits), not all zero")


def _times(span: Span) -> tuple[str, int]:
    """``occurred_at`` (the start) and the duration in nanoseconds."""
    start, end = span.start_ns, span.end_ns
    if start == NO_TIME or end == NO_TIME or start == 0 or end == 0:
        raise SpanRefused("startTimeUnixNano and endTimeUnixNano must both be set")
    if end < start:
        raise SpanRefused("the span ends before it starts")
    seconds, nanos = divmod(start, 10**9)
    fraction = f"{nanos:09d}".rstrip("0")
    return f"{_utc_second(seconds)}{'.' + fraction if fraction else ''}Z", end - start


def _subjects(span: Span, rules: tuple[SubjectRule, ...]) -> list[str]:
    subjects: set[str] = set()
    declared = span.attributes.get("sealtrail.subjects")
    if declared is not None:
        items = [declared] if isinstance(declared, str) else declared
        if not isinstance(items, list) or not all(isinstance(s, str) for s in items):
            raise SpanRefused("attribute sealtrail.subjects must be a string or an array of strings")
        subjects.update(items)
    for rule in rules:
        value = span.attributes.get(rule.attribute, span.resource.get(rule.attribute))
        if value is None or value == "":
            continue
        if not isinstance(value, str):
            raise SpanRefused(f"subject rule attribute {rule.attribute} must be a string")
        subjects.add(f"{rule.scheme}:{value}")
    return sorted(subjects)  # validated and normalised with the event, like a submitted event's


def _payload(span: Span) -> dict[str, Any] | None:
    payload: dict[str, Any] = {}
    for field, name in (("arguments", "gen_ai.tool.call.arguments"), ("result", "gen_ai.tool.call.result")):
        if name in span.attributes:
            payload[field] = span.attributes[name]
    if span.status_message:
        payload["error_message"] = span.status_message
    return payload or None


def _status(span: Span) -> tuple[str, str | None]:
    error_type = span.attributes.get("error.type")
    if error_type is not None and not isinstance(error_type, str):
        raise SpanRefused("attribute error.type must be a string")
    failed = span.status_code == STATUS_ERROR or bool(error_type)
    return ("error" if failed else "ok"), (error_type or None)


def _decision(span: Span) -> tuple[str, str]:
    value = span.attributes.get("sealtrail.decision")
    if value is None:
        return "observe", "default"
    if not isinstance(value, str) or value not in DECISIONS:  # an array is not hashable
        raise SpanRefused("attribute sealtrail.decision must be one of allow, deny, step_up, observe")
    return str(value), "sealtrail.decision"


def _latency(duration_ns: int) -> int | float:
    """Milliseconds, sub-millisecond digits kept (``latency_ms`` takes a decimal); whole ones stay
    integers. A double holds every nanosecond of a duration below 104 days exactly enough."""
    whole, rest = divmod(duration_ns, 10**6)
    return whole if rest == 0 else duration_ns / 10**6


def map_span(span: Span, rules: tuple[SubjectRule, ...]) -> MappedSpan:
    """The ``tool_call`` event of a tool-call span; :class:`SpanRefused` when it cannot be one."""
    if span.problem:
        raise SpanRefused(span.problem)
    _check_ids(span)
    occurred_at, duration_ns = _times(span)
    tool, tool_from = _tool_name(span)
    agent, agent_from = _agent(span)
    server, server_from = _server(span)
    status, error_type = _status(span)
    decision, decision_from = _decision(span)
    event: dict[str, Any] = {
        "event_id": span_event_id(span.trace_id, span.span_id), "type": "tool_call",
        "schema": "sealtrail.tool_call/v1", "occurred_at": occurred_at, "agent_id": agent,
        "server_id": server, "tool_name": tool, "decision": decision, "status": status,
        "latency_ms": _latency(duration_ns), "trace_id": span.trace_id, "span_id": span.span_id,
    }
    sources = {"occurred_at": "startTimeUnixNano", "agent_id": agent_from, "server_id": server_from,
               "tool_name": tool_from, "decision": decision_from, "status": "status.code and error.type",
               "latency_ms": "endTimeUnixNano - startTimeUnixNano"}
    session = _first(span, (("span", "mcp.session.id"), ("span", "gen_ai.conversation.id")))
    if session:
        event["session_id"], sources["session_id"] = session
    if error_type:
        event["error_type"], sources["error_type"] = error_type, "error.type"
    for field, name in (("tool_tier", "sealtrail.tool.tier"), ("policy_id", "sealtrail.policy.id"),
                        ("policy_version", "sealtrail.policy.version")):
        if name in span.attributes:
            event[field], sources[field] = span.attributes[name], name
    payload = _payload(span)
    if payload is not None:
        event["payload"] = payload
        sources["payload"] = "gen_ai.tool.call.arguments, gen_ai.tool.call.result and status.message"
    subjects = _subjects(span, rules)
    if subjects:
        event["subjects"] = subjects
        sources["subjects"] = "sealtrail.subjects and the subject rules"
    return MappedSpan(event, sources)
