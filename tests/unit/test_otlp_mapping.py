"""The span → tool_call mapping of docs/otlp.md, field by field, and the refusals."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sealtrail.core.fields import EVENT_ID_PATTERN
from sealtrail.core.validation import validate_batch
from sealtrail.errors import InvalidInputError
from services.ingest.otlp.mapping import (
    LOCAL_SERVER,
    UNKNOWN_SERVER,
    SpanRefused,
    SubjectRule,
    is_tool_call,
    map_span,
    parse_subject_rules,
    span_event_id,
)
from services.ingest.otlp.spans import NO_TIME, Span

TRACE = "5b8efff798038103d269b633813fc60c"
SPAN = "eee19b7ec3c1b174"
NOW = datetime.now(UTC)
START_NS = int((NOW - timedelta(seconds=5)).timestamp()) * 10**9 + 123_456_789
RULES = (SubjectRule("user", "enduser.id"),)


def span(**changes: Any) -> Span:
    attributes = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup_customer",
                  "gen_ai.agent.name": "support-bot", "server.address": "crm.internal",
                  "mcp.session.id": "sess-42", "gen_ai.tool.call.arguments": '{"email": "MARKER-ARG"}',
                  "gen_ai.tool.call.result": '{"name": "MARKER-RESULT"}', "enduser.id": "alice@Example.COM"}
    attributes.update(changes.pop("attributes", {}))
    base = Span(TRACE, SPAN, "execute_tool lookup_customer", 1, START_NS, START_NS + 1_500_000, 0, "",
                {k: v for k, v in attributes.items() if v is not None}, {"service.name": "agent-svc"},
                "resourceSpans[0].scopeSpans[0].spans[0]")
    return dataclasses.replace(base, **changes)


def test_an_execute_tool_span_maps_every_field() -> None:
    """The documented fields: ids, times, names, session, decision, payload and subjects."""
    event = map_span(span(), RULES).event
    assert event == {
        "event_id": span_event_id(TRACE, SPAN), "type": "tool_call", "schema": "sealtrail.tool_call/v1",
        "occurred_at": datetime.fromtimestamp(START_NS // 10**9, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        + ".123456789Z",
        "agent_id": "support-bot", "server_id": "crm.internal", "tool_name": "lookup_customer",
        "decision": "observe", "status": "ok", "latency_ms": 1.5, "trace_id": TRACE, "span_id": SPAN,
        "session_id": "sess-42",
        "payload": {"arguments": '{"email": "MARKER-ARG"}', "result": '{"name": "MARKER-RESULT"}'},
        "subjects": ["user:alice@Example.COM"],
    }
    valid, rejected = validate_batch([event], now=NOW)
    assert not rejected and valid[0].subjects == ("user:alice@example.com",)


def test_the_event_id_is_a_uuidv7_of_the_trace_and_span_ids_only() -> None:
    """Same ids, same event id (whatever else the span says); another span id, another event id."""
    first = span_event_id(TRACE, SPAN)
    assert re.fullmatch(EVENT_ID_PATTERN, first)
    assert map_span(span(start_ns=START_NS + 7, name="other"), RULES).event["event_id"] == first
    assert span_event_id(TRACE, "eee19b7ec3c1b175") != first
    assert span_event_id("5b8efff798038103d269b633813fc60d", SPAN) != first


def test_the_event_id_derivation_is_the_documented_one() -> None:
    """SHA-256 over the context string and the id bytes, first 16 bytes, version 7, variant 10."""
    import hashlib
    digest = bytearray(hashlib.sha256(b"sealtrail.dev/otlp-span-event-id/v1\n" + bytes.fromhex(TRACE)
                                      + bytes.fromhex(SPAN)).digest()[:16])
    digest[6] = 0x70 | digest[6] & 0x0F
    digest[8] = 0x80 | digest[8] & 0x3F
    assert span_event_id(TRACE, SPAN).replace("-", "") == digest.hex()


def test_durations_keep_their_sub_millisecond_digits() -> None:
    """42 us is 0.042 ms, 1 ns is 1e-06 ms, whole milliseconds stay integers; all validate."""
    for ns, ms in ((42_000, 0.042), (1, 0.000001), (3_000_000, 3), (1_234_567, 1.234567), (0, 0)):
        event = map_span(span(end_ns=START_NS + ns), RULES).event
        assert event["latency_ms"] == ms and type(event["latency_ms"]) is type(ms)
        assert not validate_batch([event], now=NOW)[1]


def test_mcp_server_spans_take_the_server_from_the_resource() -> None:
    """An MCP server's tools/call span (kind SERVER) with no server.address names its service."""
    mcp = span(kind=2, attributes={"gen_ai.operation.name": None, "mcp.method.name": "tools/call",
                                   "server.address": None, "gen_ai.agent.name": None})
    mcp = dataclasses.replace(mcp, resource={"service.name": "crm-mcp"})
    event = map_span(mcp, RULES).event
    assert (event["server_id"], event["agent_id"]) == ("crm-mcp", "crm-mcp")


def test_a_local_tool_has_the_local_server_and_the_service_as_agent() -> None:
    """No server attribute on a client-side span: server 'local'; no gen_ai.agent.*: service.name."""
    event = map_span(span(attributes={"server.address": None, "gen_ai.agent.name": None}), RULES).event
    assert (event["server_id"], event["agent_id"]) == (LOCAL_SERVER, "agent-svc")


def test_mcp_client_spans_without_a_tool_attribute_take_it_from_the_span_name() -> None:
    """The mcp SDK's client span 'MCP send tools/call add' carries no gen_ai.tool.name."""
    client = span(name="MCP send tools/call add", attributes={
        "gen_ai.operation.name": None, "gen_ai.tool.name": None, "mcp.method.name": "tools/call"})
    event = map_span(client, RULES).event
    assert (event["tool_name"], event["server_id"]) == ("add", "crm.internal")
    anonymous = span(name="MCP send tools/call add", attributes={
        "gen_ai.operation.name": None, "gen_ai.tool.name": None, "mcp.method.name": "tools/call",
        "server.address": None})
    assert map_span(anonymous, RULES).event["server_id"] == UNKNOWN_SERVER


def test_errors_set_status_error_type_and_seal_the_message() -> None:
    """Span status ERROR or error.type: status error; the status message goes to the payload only."""
    failed = map_span(span(status_code=2, status_message="MARKER-ERR for alice",
                           attributes={"error.type": "tool_error"}), RULES).event
    assert (failed["status"], failed["error_type"]) == ("error", "tool_error")
    assert failed["payload"]["error_message"] == "MARKER-ERR for alice"
    assert "MARKER" not in str({k: v for k, v in failed.items() if k not in ("payload", "subjects")})


def test_the_decision_comes_from_sealtrail_decision() -> None:
    """sealtrail.decision when set (one of the four), else observe; anything else is refused."""
    assert map_span(span(attributes={"sealtrail.decision": "deny"}), RULES).event["decision"] == "deny"
    for bad in ("maybe", ["deny"], {"a": 1}, 1):
        with pytest.raises(SpanRefused, match=r"sealtrail\.decision"):
            map_span(span(attributes={"sealtrail.decision": bad}), RULES)


def test_subjects_come_from_rules_and_sealtrail_subjects() -> None:
    """Rules read span then resource attributes; sealtrail.subjects adds declared subjects."""
    mapped = map_span(span(attributes={"enduser.id": None, "sealtrail.subjects": ["customer:77"]}),
                      (SubjectRule("user", "enduser.id"), SubjectRule("org", "tenant.org")))
    assert mapped.event["subjects"] == ["customer:77"]
    with_resource = dataclasses.replace(span(), resource={"service.name": "a", "tenant.org": "acme"})
    assert map_span(with_resource, (SubjectRule("org", "tenant.org"),)).event["subjects"] == ["org:acme"]
    assert "subjects" not in map_span(span(attributes={"enduser.id": None}), RULES).event


@pytest.mark.parametrize(("changes", "reason"), [
    ({"attributes": {"gen_ai.tool.name": None}}, "tool name"),
    ({"trace_id": "00" * 16}, "traceId"),
    ({"trace_id": "abc"}, "traceId"),
    ({"span_id": "zz" * 8}, "spanId"),
    ({"start_ns": 0}, "must both be set"),
    ({"end_ns": NO_TIME}, "must both be set"),
    ({"end_ns": START_NS - 1}, "ends before it starts"),
    ({"attributes": {"error.type": 5}}, "error.type"),
    ({"problem": "an attribute nests arrays or lists deeper than 32 levels"}, "deeper"),
])
def test_bad_tool_spans_are_refused_with_a_reason(changes: dict[str, Any], reason: str) -> None:
    """Each refusal names what is wrong and never a value of the span."""
    with pytest.raises(SpanRefused, match=re.escape(reason)) as refused:
        map_span(span(**changes), RULES)
    assert "MARKER" not in str(refused.value) and "alice" not in str(refused.value)


def test_absurd_start_times_map_and_fail_the_clock_check() -> None:
    """A start centuries ahead or in 1970 maps to a timestamp that validation refuses as skew."""
    for start in (2**64 - 10, 1):
        event = map_span(span(start_ns=start, end_ns=start + 5), RULES).event
        _, (rejection,) = validate_batch([event], now=NOW)
        assert rejection.pointer == "/events/0/occurred_at" and "occurred_at" in rejection.detail


def test_only_tool_spans_are_tool_calls() -> None:
    """chat and HTTP spans are not tool calls; execute_tool and MCP tools/call are."""
    assert is_tool_call(span())
    assert is_tool_call(span(attributes={"gen_ai.operation.name": None, "mcp.method.name": "tools/call"}))
    assert not is_tool_call(span(attributes={"gen_ai.operation.name": "chat"}))
    assert not is_tool_call(span(attributes={"gen_ai.operation.name": None, "mcp.method.name": "tools/list"}))


def test_subject_rules_parse_and_refuse_malformed_text() -> None:
    """'scheme=attribute' pairs; an empty text is no rule; a malformed pair is refused."""
    assert parse_subject_rules(" user=enduser.id , org=app.org ") == (
        SubjectRule("user", "enduser.id"), SubjectRule("org", "app.org"))
    assert parse_subject_rules("") == ()
    for bad in ("user", "=enduser.id", "1x=a", "user="):
        with pytest.raises(InvalidInputError):
            parse_subject_rules(bad)


_KEYS = ("gen_ai.tool.name", "gen_ai.agent.name", "gen_ai.agent.id", "server.address", "sealtrail.server.id",
         "mcp.session.id", "gen_ai.conversation.id", "error.type", "sealtrail.decision", "sealtrail.subjects",
         "sealtrail.tool.tier", "sealtrail.policy.id", "sealtrail.policy.version", "enduser.id",
         "gen_ai.tool.call.arguments", "gen_ai.tool.call.result")
_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                       lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                  max_size=3), max_leaves=8)


@settings(max_examples=150, deadline=None)
@given(attributes=st.dictionaries(st.sampled_from(_KEYS), _VALUES), resource=st.dictionaries(
    st.sampled_from(("service.name", "sealtrail.server.id", "enduser.id")), _VALUES), kind=st.integers(0, 5),
    status=st.integers(0, 3), message=st.text(max_size=10))
def test_any_attribute_values_map_or_are_refused_never_crash(attributes: dict[str, Any], resource: dict[str, Any],
                                                             kind: int, status: int, message: str) -> None:
    """Whatever types and values the attributes hold, a tool span is mapped (and its event is then
    accepted or rejected by validation) or refused with SpanRefused; nothing else is raised."""
    tool = dataclasses.replace(span(kind=kind, status_code=status, status_message=message),
                               attributes={"gen_ai.operation.name": "execute_tool", **attributes}, resource=resource)
    try:
        event = map_span(tool, RULES).event
    except SpanRefused:
        return
    validate_batch([event], now=NOW)


def test_malformed_subject_rules_stop_ingest_at_start_naming_the_variable() -> None:
    """SEALTRAIL_OTLP_SUBJECT_RULES is read once at start; a malformed value is a ServiceStartError."""
    from sealtrail.errors import ServiceStartError
    from sealtrail.infra.settings import Settings
    from services.ingest.app import subject_rules

    assert subject_rules(Settings(otlp_subject_rules="user=enduser.id")) == RULES
    with pytest.raises(ServiceStartError, match="SEALTRAIL_OTLP_SUBJECT_RULES"):
        subject_rules(Settings(otlp_subject_rules="user"))
