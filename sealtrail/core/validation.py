"""Batch validation: each submitted event is accepted as it is, or rejected with a reason.

:func:`validate_batch` never raises on bad input and never alters it. Each rejection names the
event's position, its ``event_id`` when readable, an RFC 9457 problem type and an RFC 6901 pointer
relative to the batch body (``/events/3/latency_ms``). No rejection ever repeats a value from a
payload or a subject (they may be personal); errors inside a payload point at ``/events/i/payload``
and go no deeper, because payload keys may be personal too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from sealtrail.core.canonical import canonical_json
from sealtrail.core.events import (
    CLIENT_EVENT_TYPES,
    EVENT_MODELS,
    SERVER_SET_FIELDS,
    EventModel,
    accepted_keys,
    normalise_subject,
)
from sealtrail.core.fields import PATTERN_MESSAGES, plain_name
from sealtrail.errors import InvalidInputError

MAX_PAYLOAD_BYTES = 64 * 1024
"""Largest payload accepted, measured as its RFC 8785 canonical JSON in bytes."""
MAX_DEPTH = 32
"""Deepest nesting accepted in any field; the payload object itself is level 1."""
DEFAULT_MAX_SKEW = timedelta(minutes=5)
"""How far in the future ``occurred_at`` may be, to allow for sender clock drift."""
DEFAULT_MAX_AGE = timedelta(days=7)
"""How far in the past ``occurred_at`` may be (an SDK spool may hold events through an outage)."""

PROBLEM_BASE = "https://sealtrail.dev/problems/"
INVALID_EVENT = PROBLEM_BASE + "invalid-event"
SERVER_SET_FIELD = PROBLEM_BASE + "server-set-field"
TYPE_NOT_ACCEPTED = PROBLEM_BASE + "event-type-not-accepted"
CLOCK_SKEW = PROBLEM_BASE + "clock-skew"
PAYLOAD_TOO_LARGE = PROBLEM_BASE + "payload-too-large"
TOO_DEEP = PROBLEM_BASE + "nesting-too-deep"

_TITLES = {
    INVALID_EVENT: "Invalid event",
    SERVER_SET_FIELD: "Field set by the server",
    TYPE_NOT_ACCEPTED: "Event type not accepted",
    CLOCK_SKEW: "Timestamp out of range",
    PAYLOAD_TOO_LARGE: "Payload too large",
    TOO_DEEP: "Nesting too deep",
}
_CONTAINERS = (dict, list)
_ANY_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why one event of a batch was refused (an RFC 9457 problem with extension members)."""

    index: int
    event_id: str | None
    type: str
    title: str
    detail: str
    pointer: str

    def as_problem(self) -> dict[str, Any]:
        """The problem-details object for this rejection."""
        problem: dict[str, Any] = {
            "type": self.type, "title": self.title, "detail": self.detail,
            "index": self.index, "pointer": self.pointer,
        }
        if self.event_id is not None:
            problem["event_id"] = self.event_id
        return problem


@dataclass(frozen=True, slots=True)
class UnreadableEvent:
    """An element of a batch that could not be read as a JSON value (see
    :mod:`sealtrail.core.jsonbody`); :func:`validate_batch` rejects it with ``problem``."""

    problem: str
    detail: str


@dataclass(frozen=True, slots=True)
class ValidEvent:
    """An accepted event: the model as sent, its normalised subjects and its canonical payload."""

    index: int
    event: EventModel
    subjects: tuple[str, ...] = ()
    """Normalised (:func:`normalise_subject`), without duplicates, sorted."""
    payload_json: bytes | None = field(default=None, repr=False)
    """RFC 8785 bytes of the payload, or ``None`` when the event has no payload."""


@dataclass(frozen=True, slots=True)
class _Limits:
    now: datetime
    max_skew: timedelta
    max_age: timedelta
    max_payload_bytes: int
    max_depth: int
    accepted_types: frozenset[str]
    base: str
    subjects: dict[str, str]
    """Normal forms of the subject ids seen in this batch (a batch repeats its subjects)."""


class _Reject(Exception):
    def __init__(self, problem: str, detail: str, pointer: str) -> None:
        super().__init__(detail)
        self.problem, self.detail, self.pointer = problem, detail, pointer


def validate_batch(
    raw_events: list[object],
    *,
    now: datetime,
    max_skew: timedelta = DEFAULT_MAX_SKEW,
    max_age: timedelta = DEFAULT_MAX_AGE,
    max_payload_bytes: int = MAX_PAYLOAD_BYTES,
    max_depth: int = MAX_DEPTH,
    accepted_types: frozenset[str] = CLIENT_EVENT_TYPES,
    pointer_base: str = "/events",
) -> tuple[list[ValidEvent], list[Rejection]]:
    """Validate each event of a batch on its own; return the accepted ones and the rejections.

    ``now`` (timezone-aware) is the receive time the clock checks use. ``accepted_types``
    defaults to the gateway types: ``access``, ``erasure`` and ``retention`` are Sealtrail's own.
    Together the two lists hold every position of ``raw_events`` exactly once, in order.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    limits = _Limits(now.astimezone(UTC), max_skew, max_age, max_payload_bytes, max_depth,
                     accepted_types, pointer_base, {})
    accepted: list[ValidEvent] = []
    rejected: list[Rejection] = []
    for index, raw in enumerate(raw_events):
        try:
            accepted.append(_validate_one(index, raw, limits))
        except _Reject as e:
            rejected.append(Rejection(index, _readable_event_id(raw), e.problem,
                                      _TITLES[e.problem], e.detail, e.pointer))
    return accepted, rejected


def _validate_one(index: int, raw: object, limits: _Limits) -> ValidEvent:
    here = f"{limits.base}/{index}"
    if not isinstance(raw, dict):
        if isinstance(raw, UnreadableEvent):
            raise _Reject(raw.problem, raw.detail, here)
        raise _Reject(INVALID_EVENT, "event must be a JSON object", here)
    model = _model_for(raw, here, limits)
    _check_fields(raw, here, limits, accepted_keys(model))
    try:
        event = model.model_validate(raw, strict=True)
    except ValidationError as e:
        raise _from_validation_error(e, here) from None
    payload_json = _check_payload(event, here, limits)
    _check_clock(event, here, limits)
    return ValidEvent(index, event, _normalised_subjects(event, here, limits.subjects), payload_json)


def _normalised_subjects(event: EventModel, here: str, seen: dict[str, str]) -> tuple[str, ...]:
    subjects: list[str] = getattr(event, "subjects", None) or []
    if not subjects:
        return ()
    normal = set()
    for subject in subjects:
        form = seen.get(subject)
        if form is None:
            try:
                form = seen[subject] = normalise_subject(subject)
            except InvalidInputError as e:
                raise _Reject(INVALID_EVENT, e.detail, f"{here}/subjects") from None
        normal.add(form)
    return tuple(sorted(normal))


def _model_for(raw: dict[Any, Any], here: str, limits: _Limits) -> type[EventModel]:
    kind = raw.get("type")
    if "type" not in raw:
        raise _Reject(INVALID_EVENT, "required field 'type' is missing", f"{here}/type")
    if not isinstance(kind, str) or kind not in EVENT_MODELS:
        known = ", ".join(sorted(limits.accepted_types))
        raise _Reject(INVALID_EVENT, f"unknown event type; expected one of: {known}", f"{here}/type")
    if kind not in limits.accepted_types:
        raise _Reject(TYPE_NOT_ACCEPTED, f"events of type '{kind}' are written by Sealtrail only",
                      f"{here}/type")
    return EVENT_MODELS[kind]


def _check_fields(raw: dict[Any, Any], here: str, limits: _Limits, known: frozenset[str]) -> None:
    for key, value in raw.items():
        if key in known:
            if value is None:
                raise _Reject(INVALID_EVENT, f"{key}: must not be null; omit the field instead",
                              f"{here}/{escape_pointer(key)}")
            problem = _walk(value, limits.max_depth) if type(value) in _CONTAINERS else None
            if problem is _DEEP:
                raise _Reject(TOO_DEEP, f"field '{key}' nests deeper than {limits.max_depth} levels",
                              f"{here}/{escape_pointer(key)}")
            if problem is _NOT_JSON:
                detail = ("payload must be a JSON object with string keys and JSON values" if key == "payload"
                          else f"field '{key}' holds a value that is not JSON")
                raise _Reject(INVALID_EVENT, detail, f"{here}/{escape_pointer(key)}")
            continue
        if key in SERVER_SET_FIELDS:
            raise _Reject(SERVER_SET_FIELD, f"field '{key}' is set by the server and must not be sent",
                          f"{here}/{escape_pointer(key)}")
        named = plain_name(key)
        if _deeper_than(value, limits.max_depth):
            raise _Reject(TOO_DEEP, f"{f'field {key!r}' if named else 'an unknown field'} nests deeper "
                          f"than {limits.max_depth} levels", f"{here}/{key}" if named else here)
        if not named:  # the model would refuse it too, but name it in the detail and pointer
            raise _Reject(INVALID_EVENT, "unknown field", here)


def _check_payload(event: EventModel, here: str, limits: _Limits) -> bytes | None:
    payload = getattr(event, "payload", None)
    if payload is None:
        return None
    try:
        payload_json = canonical_json(payload)
    except InvalidInputError:
        raise _Reject(INVALID_EVENT, "payload holds a value JSON cannot represent exactly "
                      "(NaN, infinity, an integer beyond 2^53 or a lone UTF-16 surrogate)",
                      f"{here}/payload") from None
    if len(payload_json) > limits.max_payload_bytes:
        raise _Reject(PAYLOAD_TOO_LARGE, f"payload too large ({len(payload_json)} bytes > "
                      f"{limits.max_payload_bytes})", f"{here}/payload")
    return payload_json


def _check_clock(event: EventModel, here: str, limits: _Limits) -> None:
    occurred = event.occurred_at_datetime
    if occurred > limits.now + limits.max_skew:
        ahead = int((occurred - limits.now).total_seconds())
        raise _Reject(CLOCK_SKEW, f"occurred_at is {ahead} s in the future "
                      f"(max skew {int(limits.max_skew.total_seconds())} s)", f"{here}/occurred_at")
    if occurred < limits.now - limits.max_age:
        raise _Reject(CLOCK_SKEW, f"occurred_at is older than the max age of "
                      f"{int(limits.max_age.total_seconds())} s", f"{here}/occurred_at")


def _from_validation_error(error: ValidationError, here: str) -> _Reject:
    errors = error.errors(include_url=False, include_input=False, include_context=True)
    first = errors[0]
    loc = list(first["loc"])
    if first["type"] == "dependent_required":
        loc.append(str(first.get("ctx", {}).get("field", "")))
    if len(loc) > 1 and loc[0] == "payload":
        detail = "payload must be a JSON object with string keys and JSON values"
        return _Reject(INVALID_EVENT, detail, f"{here}/payload")
    if first["type"] == "extra_forbidden" and not plain_name(loc[-1]):
        loc.pop()  # a client-chosen name that may be personal (a subject, an address): not repeated
    detail = _describe(first["type"], _message(first), loc)
    more = len(errors) - 1
    if more:
        detail += f" ({more} more problem{'s' if more > 1 else ''} in this event)"
    pointer = here + "".join(f"/{escape_pointer(str(part))}" for part in loc)
    return _Reject(INVALID_EVENT, detail, pointer)


def _message(error: ErrorDetails) -> str:
    kind = error["type"]
    if kind == "string_pattern_mismatch":
        pattern = str(error.get("ctx", {}).get("pattern", ""))
        return PATTERN_MESSAGES.get(pattern, error["msg"])
    if kind == "string_unicode":
        return "must be valid Unicode text"
    return error["msg"]


def _describe(kind: str, message: str, loc: list[Any]) -> str:
    name = ".".join(str(part) for part in loc) or "event"
    if kind == "extra_forbidden":
        return f"unknown field '{name}'" if loc else "unknown field"
    if kind == "missing":
        return f"required field '{name}' is missing"
    return f"{name}: {message}"


def escape_pointer(token: str) -> str:
    """Escape one RFC 6901 reference token (``~`` → ``~0``, ``/`` → ``~1``)."""
    return token.replace("~", "~0").replace("/", "~1")


def _readable_event_id(raw: object) -> str | None:
    if isinstance(raw, dict):
        value = raw.get("event_id")
        if isinstance(value, str) and _ANY_UUID.fullmatch(value):
            return value
    return None


def _deeper_than(value: object, limit: int) -> bool:
    """Whether a value nests containers deeper than ``limit`` levels (``value`` itself is level 1)."""
    return _walk(value, limit, scalars=None) is _DEEP


_DEEP = "deep"
_NOT_JSON = "not-json"
_JSON_SCALARS = frozenset({str, int, float, bool, type(None)})


def _walk(value: object, levels: int, scalars: frozenset[type] | None = _JSON_SCALARS) -> str | None:
    """``_DEEP`` past ``levels`` container levels, ``_NOT_JSON`` for a value of a non-JSON type
    (when ``scalars`` names the JSON ones), else ``None``. ``value`` counts as the first level."""
    values: Iterable[object]
    if type(value) is dict:
        values = value.values()
    elif type(value) is list:
        values = value
    elif scalars is None or type(value) in scalars:
        return None
    else:
        return _NOT_JSON
    if levels < 1:
        return _DEEP
    for item in values:
        kind = type(item)
        if kind is dict or kind is list:
            problem = _walk(item, levels - 1, scalars)
            if problem is not None:
                return problem
        elif scalars is not None and kind not in scalars:
            return _NOT_JSON
    return None
