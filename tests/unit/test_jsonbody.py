"""Reading batch bodies exactly: integers as written, no repeated names, one bad event alone refused."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sealtrail.core.jsonbody import loads_exact, read_events
from sealtrail.core.validation import INVALID_EVENT, TOO_DEEP, UnreadableEvent
from sealtrail.errors import InvalidInputError

GOOD = b'{"type": "tool_call", "n": 1}'


def _body(*events: bytes) -> bytes:
    return b'{"events": [' + b", ".join(events) + b"]}"


def test_integers_keep_their_exact_value() -> None:
    events = read_events(_body(b'{"big": 123456789012345678901234567890, "neg": -18446744073709551617}'))
    assert events == [{"big": 123456789012345678901234567890, "neg": -18446744073709551617}]
    assert type(events[0]["big"]) is int  # type: ignore[index]


@pytest.mark.parametrize(("event", "problem"), [
    (b'{"subjects": ["user:a@example.com"], "subjects": []}', INVALID_EVENT),
    (b'{"payload": {"x": 1, "y": {"k": 1, "k": 2}}}', INVALID_EVENT),
    (b'{"n": NaN}', INVALID_EVENT),
    (b'{"n": -Infinity}', INVALID_EVENT),
    (b'{"n": 01}', INVALID_EVENT),
    (b'{"n": "tab\tinside"}', INVALID_EVENT),
    (b'{"x": ' + b'[' * 3000 + b']' * 3000 + b'}', TOO_DEEP),
    (b'{"x": ' + b'{"a":' * 40 + b'NaN' + b'}' * 40 + b'}', TOO_DEEP),
    (b'NaN', INVALID_EVENT),
])
def test_an_unreadable_event_is_refused_alone(event: bytes, problem: str) -> None:
    events = read_events(_body(GOOD, event, GOOD))
    assert events[0] == events[2] == {"type": "tool_call", "n": 1}
    unreadable = events[1]
    assert isinstance(unreadable, UnreadableEvent) and unreadable.problem == problem
    assert "user:a" not in unreadable.detail and "NaN" not in unreadable.detail.split("(")[0]


def test_values_json_allows_but_cannot_carry_are_read_for_validation_to_refuse() -> None:
    """A lone surrogate escape and 1e400 are JSON grammar: they are read (as a lone surrogate and
    an infinity) and the event is refused by validation, with its neighbours kept."""
    events = read_events(_body(GOOD, b'{"s": "\\ud800", "f": 1e400}'))
    assert events[1] == {"s": "\ud800", "f": float("inf")}


def test_strings_holding_brackets_and_quotes_split_correctly() -> None:
    tricky = b'{"a": "x\\"], {\\\\", "b": [1, {"c": "}]"}]}'
    events = read_events(_body(tricky, b"NaN", GOOD))
    assert events[0] == {"a": 'x"], {\\', "b": [1, {"c": "}]"}]}
    assert isinstance(events[1], UnreadableEvent) and events[2] == {"type": "tool_call", "n": 1}


@pytest.mark.parametrize(("body", "message"), [
    (b"\xff\xfe{}", "not UTF-8"),
    (b"\xef\xbb\xbf" + _body(GOOD), "not valid JSON"),
    (b"", "not valid JSON"),
    (b'{"events": [1, 2,]}', "not valid JSON"),
    (b'{"events": [1, , 2]}', "not valid JSON"),
    (b'{"events": [NaN, "open]}', "not valid JSON"),
    (b'{"events": [NaN]} trailing', "not valid JSON"),
    (b'{"events": [NaN], "other": 1}', "not valid JSON"),
    (b'[NaN]', "not valid JSON"),
    (b'{"events": [], "events": []}', "repeats a member name"),
    (b'[]', "must be a JSON object"),
    (b'{"events": {}}', "must be an array"),
])
def test_a_body_that_cannot_be_read_is_refused_whole(body: bytes, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        read_events(body)


def test_unknown_members_are_named_only_when_plain_identifiers() -> None:
    with pytest.raises(InvalidInputError) as named:
        read_events(b'{"events": [], "evnets": []}')
    assert named.value.pointer == "/evnets" and "'evnets'" in named.value.detail
    with pytest.raises(InvalidInputError) as personal:
        read_events(b'{"events": [], "user:alice@example.com": 1}')
    assert personal.value.pointer == "" and "alice" not in str(personal.value)


def test_an_empty_batch_reads_as_no_events() -> None:
    assert read_events(b'{"events": []}') == [] == read_events(b' { "events" : [ ] } ')


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@given(st.lists(_json, max_size=6), st.data())
def test_one_by_one_reads_the_same_values_as_the_whole(events: list[object], data: st.DataObject) -> None:
    """Whichever way a body is read (whole, or split after an unreadable element), the readable
    elements come out equal to what was written."""
    texts = [json.dumps(e, ensure_ascii=data.draw(st.booleans())).encode() for e in events]
    assert read_events(_body(*texts)) == events
    at = data.draw(st.integers(0, len(texts)))
    mixed = read_events(_body(*texts[:at], b"NaN", *texts[at:]))
    assert isinstance(mixed[at], UnreadableEvent)
    assert mixed[:at] + mixed[at + 1:] == events


def test_loads_exact_refuses_repeats_at_any_depth() -> None:
    with pytest.raises(ValueError, match="repeats a member name"):
        loads_exact('[{"a": [{"b": 1, "b": 1}]}]')
