"""Event models, batch validation with pointers, header building and subject normalisation."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from sealtrail.core.canonical import canonical_json
from sealtrail.core.events import (
    ErasureEvent,
    ToolCallEvent,
    header_dict,
    normalise_subject,
)
from sealtrail.core.validation import (
    CLOCK_SKEW,
    INVALID_EVENT,
    MAX_PAYLOAD_BYTES,
    PAYLOAD_TOO_LARGE,
    SERVER_SET_FIELD,
    TOO_DEEP,
    TYPE_NOT_ACCEPTED,
    Rejection,
    validate_batch,
)
from sealtrail.errors import InvalidInputError

NOW = datetime(2025, 11, 4, 9, 15, 30, tzinfo=UTC)
EID = "0192f3a0-7c4e-7b21-9d3a-5e8f1c2b4a6d"
SECRET = "PLANTED-SECRET-7f3a"


def call(**changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": EID, "type": "tool_call", "occurred_at": "2025-11-04T09:15:27.412Z",
        "agent_id": "agent-7", "server_id": "github-mcp", "tool_name": "create_issue",
        "decision": "allow", "status": "ok", "payload": {"arguments": {"q": SECRET}},
        "subjects": ["user:Alice@Example.COM"],
    }
    event.update(changes)
    return event


def only_rejection(event: object, **kwargs: Any) -> Rejection:
    accepted, rejected = validate_batch([call(), event], now=NOW, **kwargs)
    assert len(accepted) == 1 and accepted[0].index == 0
    assert len(rejected) == 1 and rejected[0].index == 1
    return rejected[0]


def test_valid_event_is_accepted_unaltered() -> None:
    """An accepted event keeps every field as sent; subjects are normalised beside it."""
    raw = call(latency_ms=5, session_id="  spaced  ")
    [valid], rejected = validate_batch([copy.deepcopy(raw)], now=NOW)
    assert rejected == []
    assert isinstance(valid.event, ToolCallEvent)
    assert valid.event.model_dump(by_alias=True, exclude_none=True) == raw
    assert valid.subjects == ("user:Alice@example.com",)
    assert valid.payload_json == canonical_json(raw["payload"])


@pytest.mark.parametrize(
    ("changes", "pointer", "words"),
    [
        ({"latency_ms": -1}, "/events/1/latency_ms", "number of milliseconds from 0"),
        ({"latency_ms": "5"}, "/events/1/latency_ms", "number of milliseconds from 0"),
        ({"latency_ms": -0.5}, "/events/1/latency_ms", "number of milliseconds from 0"),
        ({"cost_micros": 5.0, "currency": "EUR"}, "/events/1/cost_micros", "valid integer"),
        ({"decision": "maybe"}, "/events/1/decision", "'allow'"),
        ({"tool_name": "bad\u0000name"}, "/events/1/tool_name", "control characters"),
        ({"agent_id": "x" * 300}, "/events/1/agent_id", "at most 256"),
        ({"event_id": "0192f3a0-7c4e-4b21-9d3a-5e8f1c2b4a6d"}, "/events/1/event_id", "UUIDv7"),
        ({"occurred_at": "2025-11-04T10:15:27+01:00"}, "/events/1/occurred_at", "ending in 'Z'"),
        ({"colour": "blue"}, "/events/1/colour", "unknown field 'colour'"),
        ({"a/b~c": 1}, "/events/1", "unknown field"),
        ({"user:alice@example.com": 1}, "/events/1", "unknown field"),
        ({"session_id": None}, "/events/1/session_id", "must not be null"),
        ({"cost_micros": 10}, "/events/1/currency", "currency is required"),
        ({"subjects": ["user:a", "nocolon"]}, "/events/1/subjects/1", "scheme:identifier"),
        ({"type": "tool_cal"}, "/events/1/type", "unknown event type"),
    ],
)
def test_rejections_point_at_the_field(changes: dict[str, Any], pointer: str, words: str) -> None:
    """Each fault is rejected with a pointer to the field at fault and a reason naming it."""
    rejection = only_rejection(call(**changes))
    assert (rejection.type, rejection.pointer) == (INVALID_EVENT, pointer)
    assert words in rejection.detail
    assert rejection.event_id == changes.get("event_id", EID)


def test_missing_field_points_at_it() -> None:
    """A missing required field is named, and its pointer is where it belongs."""
    event = call()
    del event["status"]
    rejection = only_rejection(event)
    assert rejection.pointer == "/events/1/status"
    assert rejection.detail.startswith("required field 'status' is missing")


@pytest.mark.parametrize("field", ["tenant", "gateway_id", "received_at", "key_ids", "payload_digest",
                                   "payload_size", "index"])
def test_server_set_fields_are_refused(field: str) -> None:
    """A client can never supply a field the server sets."""
    rejection = only_rejection(call(**{field: "x"}))
    assert (rejection.type, rejection.pointer) == (SERVER_SET_FIELD, f"/events/1/{field}")


@pytest.mark.parametrize("kind", ["access", "erasure", "retention"])
def test_sealtrail_types_are_refused_from_gateways(kind: str) -> None:
    """Gateways cannot write access, erasure or retention events."""
    rejection = only_rejection({"type": kind, "event_id": EID})
    assert (rejection.type, rejection.pointer) == (TYPE_NOT_ACCEPTED, "/events/1/type")


def test_non_object_event_is_refused() -> None:
    """An event that is not a JSON object is refused as a whole, with no event_id."""
    rejection = only_rejection(["not", "an", "object"])
    assert (rejection.pointer, rejection.event_id) == ("/events/1", None)


def test_unreadable_event_id_is_not_echoed() -> None:
    """An event_id that is not a UUID is not repeated back."""
    rejection = only_rejection(call(event_id=SECRET))
    assert rejection.event_id is None and SECRET not in rejection.detail


def test_clock_skew_future_and_past() -> None:
    """occurred_at too far ahead or older than the max age is refused, with a pointer."""
    ahead = only_rejection(call(occurred_at="2025-11-04T09:25:30Z"))
    assert (ahead.type, ahead.pointer) == (CLOCK_SKEW, "/events/1/occurred_at")
    assert "600 s in the future" in ahead.detail
    old = only_rejection(call(occurred_at="2025-11-01T00:00:00Z"), max_age=timedelta(days=1))
    assert (old.type, old.pointer) == (CLOCK_SKEW, "/events/1/occurred_at")
    within = call(occurred_at="2025-11-04T09:19:30Z")
    assert validate_batch([within], now=NOW)[1] == []


def test_oversized_payload_is_refused_without_echo() -> None:
    """A payload over 64 KiB is refused; the reason gives sizes, never content."""
    rejection = only_rejection(call(payload={"blob": SECRET * 5000}))
    size = len(canonical_json({"blob": SECRET * 5000}))
    assert (rejection.type, rejection.pointer) == (PAYLOAD_TOO_LARGE, "/events/1/payload")
    assert rejection.detail == f"payload too large ({size} bytes > {MAX_PAYLOAD_BYTES})"


def test_deep_payload_is_refused() -> None:
    """A payload nested deeper than 32 levels is refused; 32 levels pass."""
    def nest(levels: int) -> dict[str, Any]:
        value: dict[str, Any] = {}
        for _ in range(levels - 1):
            value = {SECRET: value}
        return value

    assert validate_batch([call(payload=nest(32))], now=NOW)[1] == []
    rejection = only_rejection(call(payload=nest(33)))
    assert (rejection.type, rejection.pointer) == (TOO_DEEP, "/events/1/payload")


def test_payload_errors_stop_at_the_payload() -> None:
    """Errors inside a payload point at /payload: payload keys and values are never echoed."""
    for payload in ({SECRET: float("nan")}, {SECRET: (1, 2)}, {"k": {SECRET: 2**60}}):
        rejection = only_rejection(call(payload=payload))
        assert rejection.pointer == "/events/1/payload"
        assert SECRET not in rejection.detail + rejection.pointer


def test_subject_errors_do_not_echo_subjects() -> None:
    """A bad subject is pointed at by index; the subject itself is never repeated."""
    rejection = only_rejection(call(subjects=[f" user:{SECRET}"]))
    assert rejection.pointer == "/events/1/subjects/0"
    assert SECRET not in rejection.detail


def test_every_position_is_answered_in_order() -> None:
    """A mixed batch is split into accepted and rejected, each keeping its position."""
    batch: list[object] = [call(), 7, call(latency_ms=-1), call(), None]
    accepted, rejected = validate_batch(batch, now=NOW)
    assert [v.index for v in accepted] == [0, 3]
    assert [r.index for r in rejected] == [1, 2, 4]


def test_pointer_base_and_problem_dict() -> None:
    """The pointer base is configurable; a rejection renders as problem details."""
    [rejection] = validate_batch([call(status="??")], now=NOW, pointer_base="")[1]
    problem = rejection.as_problem()
    assert problem["pointer"] == "/0/status" and problem["event_id"] == EID
    assert problem["type"] == INVALID_EVENT and problem["title"] == "Invalid event"


def test_naive_now_is_a_programming_error() -> None:
    """validate_batch insists on an aware clock."""
    with pytest.raises(ValueError, match="timezone-aware"):
        validate_batch([], now=datetime(2025, 1, 1))


def test_models_are_frozen_and_strict() -> None:
    """Models refuse mutation and coercion."""
    event = ToolCallEvent.model_validate(call(), strict=True)
    with pytest.raises(ValidationError):
        event.status = "error"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        ToolCallEvent.model_validate(call(status=b"ok"))


def test_header_dict_adds_server_fields_and_drops_private_ones() -> None:
    """The entry header is the event as sent, minus payload and subjects, plus server fields."""
    event = ToolCallEvent.model_validate(call(schema="sealtrail.tool_call/v1", latency_ms=3), strict=True)
    sealed = {"key_ids": ["a" * 32], "payload_digest": "blake3:" + "0" * 64, "payload_size": 10}
    header = header_dict(event, tenant="acme", gateway_id="gw-1",
                         received_at=datetime(2025, 11, 4, 9, 15, 28, 5000, tzinfo=UTC), sealed=sealed)
    assert header == {
        "event_id": EID, "type": "tool_call", "schema": "sealtrail.tool_call/v1",
        "occurred_at": "2025-11-04T09:15:27.412Z", "agent_id": "agent-7", "server_id": "github-mcp",
        "tool_name": "create_issue", "decision": "allow", "status": "ok", "latency_ms": 3,
        "tenant": "acme", "gateway_id": "gw-1", "received_at": "2025-11-04T09:15:28.005000Z", **sealed,
    }
    canonical_json(header)


def test_header_dict_for_a_sealtrail_event() -> None:
    """Sealtrail's own events build their headers the same way."""
    erasure = ErasureEvent(event_id=EID, type="erasure", occurred_at="2025-11-04T09:15:27Z",
                           request_ref="DSR-1", legal_basis="gdpr-art17-1a", erased_key_ids=["a" * 32],
                           payloads_deleted=1, index_rows_deleted=1)
    header = header_dict(erasure, tenant="acme", gateway_id="sealtrail", received_at=NOW)
    assert header["erased_key_ids"] == ["a" * 32] and "payload" not in header


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("user:alice@example.com", "user:alice@example.com"),
        ("  USER:Alice@Example.COM\t", "user:Alice@example.com"),
        ("Email:a@b@Example.ORG", "email:a@b@example.org"),
        ("user:Cafe\u0301", "user:Caf\u00e9"),
        ("user:ID-42", "user:ID-42"),
        ("phone:+49 30 1234", "phone:+49 30 1234"),
        ("user:@Example.com", "user:@Example.com"),
    ],
)
def test_normalise_subject(raw: str, normal: str) -> None:
    """NFC, strip, lowercase scheme and e-mail domain; nothing else changes."""
    assert normalise_subject(raw) == normal
    assert normalise_subject(normal) == normal


@pytest.mark.parametrize("raw", ["alice", ":alice", "user:", "  ", "user:a\u0000b"])
def test_normalise_subject_refuses_malformed_ids_without_echo(raw: str) -> None:
    """A malformed subject id is refused, and the message does not repeat it."""
    with pytest.raises(InvalidInputError) as caught:
        normalise_subject(raw)
    assert raw.strip() not in caught.value.detail or not raw.strip()


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"tool_def_hash": "md5:abc"}, "'sha256:' and 64 lowercase hex digits"),
        ({"currency": "eur", "cost_micros": 1}, "ISO 4217"),
        ({"occurred_at": "yesterday"}, "ending in 'Z'"),
        ({"session_id": "tab\there"}, "control characters"),
        ({"server_id": "next\u0085line"}, "control characters"),
        ({"agent_id": "lone \ud800 surrogate"}, "valid Unicode"),
    ],
)
def test_pattern_failures_read_as_sentences(changes: dict[str, Any], words: str) -> None:
    """A field failing its pattern is explained in words; the raw regular expression is never shown."""
    rejection = only_rejection(call(**changes))
    assert words in rejection.detail
    assert "pattern" not in rejection.detail


def test_a_model_used_directly_names_the_null_field() -> None:
    """Outside validate_batch, a null is still refused and the message names the field."""
    with pytest.raises(ValidationError, match="'session_id' must not be null"):
        ToolCallEvent.model_validate(call(session_id=None))
    with pytest.raises(ValidationError, match="colour"):
        ToolCallEvent.model_validate(call(colour=None))


@pytest.mark.parametrize("payload", [{"k": {1, 2}}, {"k": [b"bytes"]}, {"k": {"deeper": object()}}])
def test_payload_values_must_be_json_types(payload: dict[str, Any]) -> None:
    """A payload built in Python with a non-JSON value is refused at /payload (never echoed)."""
    rejection = only_rejection(call(payload=payload))
    assert rejection.pointer == "/events/1/payload"
    assert "JSON" in rejection.detail
