"""Reading a batch body ``{"events": [...]}`` exactly as it was sent.

The body is UTF-8 JSON (RFC 8259), read with three rules a general-purpose parser does not keep:

- every integer keeps its exact value (a parser that turns ``123456789012345678901234567890``
  into a float would alter a payload; validation refuses integers beyond 2^53 instead);
- an object that repeats a member name is refused, never resolved by keeping one of the values
  (RFC 8785 canonical JSON requires I-JSON input, RFC 7493 §2.3; and which ``subjects`` would
  count?);
- one event that cannot be read does not sink its batch: it becomes an :class:`UnreadableEvent`,
  which :func:`sealtrail.core.validation.validate_batch` rejects at its index, and its
  neighbours are read and judged on their own.

Only a body whose frame cannot be read (not UTF-8, not JSON around the events, not an object
with one member ``events`` holding an array) is refused as a whole. No message repeats a value or
a member name from the body, except member names that are plain identifiers.
Pure: no I/O.
"""

from __future__ import annotations

import json
import re
from typing import Any

from sealtrail.core.fields import plain_name
from sealtrail.core.validation import INVALID_EVENT, MAX_DEPTH, TOO_DEEP, UnreadableEvent
from sealtrail.errors import InvalidInputError


class _RepeatedMember(ValueError):
    """An object repeats a member name (never carries the name: it may be personal)."""


class RepeatedMembers(dict[str, Any]):
    """An object, read by :func:`loads_marking_repeats`, whose text repeated a member name."""


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    members = dict(pairs)
    if len(members) != len(pairs):
        raise _RepeatedMember("an object repeats a member name")
    return members


def _marking_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    members = dict(pairs)
    return RepeatedMembers(members) if len(members) != len(pairs) else members


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_DECODER = json.JSONDecoder(object_pairs_hook=_unique_members, parse_constant=_no_constant)
_MARKING_DECODER = json.JSONDecoder(object_pairs_hook=_marking_repeats, parse_constant=_no_constant)
# A string token (unrolled: no backtracking per character), one structural character, or a quote
# that opens no complete string.
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{},:]|"', re.DOTALL)
_FRAME_HEAD = re.compile(r'\s*\{\s*"events"\s*:\s*\[')
_FRAME_TAIL = re.compile(r"\s*\}\s*")
_WHITESPACE = re.compile(r"\s*")


def loads_marking_repeats(text: str | bytes) -> Any:
    """One JSON value with exact integers, where an object that repeats a member name comes back
    as :class:`RepeatedMembers` (find it with :func:`repeated_at`); ``ValueError`` for NaN,
    Infinity or anything :func:`json.loads` refuses, ``RecursionError`` when nested too deep."""
    return _MARKING_DECODER.decode(text.decode("utf-8") if isinstance(text, bytes) else text)


def repeated_at(value: Any, path: tuple[str | int, ...] = ()) -> tuple[str | int, ...] | None:
    """The path to the first :class:`RepeatedMembers` in ``value``, or None."""
    if isinstance(value, RepeatedMembers):
        return path
    items: Any = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, inner in items:
        found = repeated_at(inner, (*path, key))
        if found is not None:
            return found
    return None


def loads_exact(text: str) -> Any:
    """One JSON value with exact integers; ``ValueError`` for a repeated member name, NaN or
    Infinity, or anything :func:`json.loads` refuses; ``RecursionError`` when nested too deep."""
    return _DECODER.decode(text)


def read_events(body: bytes) -> list[object]:
    """The elements of the body's ``events`` array, each a JSON value or an :class:`UnreadableEvent`.

    Raises :class:`InvalidInputError` (pointer into the body) when the body as a whole cannot
    be read as ``{"events": [...]}``.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInputError("body is not UTF-8 text", pointer="") from None
    try:
        doc = loads_exact(text)
    except (ValueError, RecursionError) as e:
        try:
            return _one_by_one(text)
        except InvalidInputError:
            if isinstance(e, _RepeatedMember):
                raise InvalidInputError("the body object repeats a member name", pointer="") from None
            raise
    return _events_of(doc)


def _events_of(doc: object) -> list[object]:
    if not isinstance(doc, dict) or "events" not in doc:
        raise InvalidInputError("body must be a JSON object {\"events\": [...]}", pointer="")
    for key in doc:
        if key != "events":
            named = plain_name(key)
            raise InvalidInputError(f"unknown member '{key}' (only 'events' is allowed)" if named
                                    else "unknown member (only 'events' is allowed)",
                                    pointer=f"/{key}" if named else "")
    events = doc["events"]
    if not isinstance(events, list):
        raise InvalidInputError("events must be an array", pointer="/events")
    return events


def _one_by_one(text: str) -> list[object]:
    """The events of a body that does not read as a whole: split the array, read each element."""
    head = _FRAME_HEAD.match(text)
    if head is None:
        raise _not_json()
    events: list[object] = []
    depth = deepest = 0
    start = head.end()
    for token in _TOKEN.finditer(text, start):
        mark = token.group()
        if mark == '"':
            raise _not_json()  # a string that never ends
        if mark in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif mark in "]}":
            if depth == 0:
                if mark == "}":
                    raise _not_json()
                _element(text[start:token.start()], deepest, events, last=True)
                if _FRAME_TAIL.fullmatch(text, token.end()) is None:
                    raise _not_json()
                return events
            depth -= 1
        elif mark == "," and depth == 0:
            _element(text[start:token.start()], deepest, events, last=False)
            start, deepest = token.end(), 0
    raise _not_json()


def _element(span: str, deepest: int, events: list[object], *, last: bool) -> None:
    if _WHITESPACE.fullmatch(span):
        if last and not events:
            return  # an empty array
        raise _not_json()  # an empty element: "[,1]", "[1,]", "[1,,2]"
    try:
        events.append(loads_exact(span))
    except _RepeatedMember:
        events.append(UnreadableEvent(INVALID_EVENT, "an object in this event repeats a member name"))
    except RecursionError:
        events.append(UnreadableEvent(TOO_DEEP, f"event nests deeper than {MAX_DEPTH} levels"))
    except ValueError:
        if deepest > MAX_DEPTH + 1:
            events.append(UnreadableEvent(TOO_DEEP, f"event nests deeper than {MAX_DEPTH} levels"))
        else:
            events.append(UnreadableEvent(INVALID_EVENT, "event is not valid JSON (a syntax error, NaN or "
                                          "Infinity, or a number too long to read)"))


def _not_json() -> InvalidInputError:
    return InvalidInputError("body is not valid JSON", pointer="")
