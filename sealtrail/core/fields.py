"""Field types shared by the event models: the header's wire formats, checked without coercion.

Each type mirrors a definition of ``schemas/common.v1.schema.json``; the regular expressions
here are the same strings as that file's ``pattern`` keywords, matched in full, so the models and
the JSON Schemas accept the same text. Most are checked by pydantic-core's own regex engine (no
Python call per field, which matters at ingest rates); the few it cannot run (look-ahead) and the
subject ids are checked in Python with ``re.fullmatch``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, Field, PlainValidator, StringConstraints
from pydantic_core import PydanticCustomError

MAX_HEADER_STRING = 256
"""Longest header string, in characters."""
MAX_SUBJECTS = 32
"""Most data subjects one event may declare."""
MAX_SUBJECT_LENGTH = 320
MAX_TOOLS = 1024
"""Most tools one ``tool_list`` snapshot may name."""
MAX_KEY_IDS = 1024
MAX_SAFE_INT = 2**53 - 1
"""Largest integer every JSON reader (and RFC 8785) represents exactly."""

CONTROL_PATTERN = "[\\u0000-\\u001f\\u007f-\\u009f]"
"""Unicode ``Cc`` characters (C0, DEL, C1): forbidden in every header string."""
EVENT_ID_PATTERN = "^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"
TIMESTAMP_PATTERN = (
    "^[1-9][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    "T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,9})?Z$"
)
PERIOD_PATTERN = "^[1-9][0-9]{3}-(0[1-9]|1[0-2])$"
KEY_ID_PATTERN = "^[0-9a-f]{32}$"
DEF_HASH_PATTERN = "^sha256:[0-9a-f]{64}$"
TRACE_ID_PATTERN = "^(?!0{32}$)[0-9a-f]{32}$"
SPAN_ID_PATTERN = "^(?!0{16}$)[0-9a-f]{16}$"
CURRENCY_PATTERN = "^[A-Z]{3}$"
CODE_PATTERN = "^[a-z][a-z0-9_.-]{0,63}$"
SUBJECT_PATTERN = "^[A-Za-z][A-Za-z0-9+.-]{0,31}:\\S(.*\\S)?$"

_CONTROL = re.compile(CONTROL_PATTERN)


_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


def plain_name(name: object) -> bool:
    """Whether a client-chosen member or parameter name may be repeated in a problem: a plain
    identifier of at most 64 characters (helps with a typo). Any other name may be personal
    (``user:alice@example.com``) and is never repeated."""
    return isinstance(name, str) and _PLAIN_NAME.fullmatch(name) is not None


def has_control_character(text: str) -> bool:
    """Whether ``text`` holds a Unicode control (``Cc``) character."""
    return _CONTROL.search(text) is not None


def _check_text(value: str) -> str:
    if has_control_character(value):
        raise PydanticCustomError("control_character", "must not contain control characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise PydanticCustomError("invalid_unicode", "must be valid Unicode text") from None
    return value


def _matching(pattern: str, message: str) -> Callable[[str], str]:
    compiled = re.compile(pattern.removeprefix("^").removesuffix("$"))

    def check(value: str) -> str:
        if compiled.fullmatch(value) is None:
            raise PydanticCustomError("pattern", message)
        return _check_text(value)

    return check


def _check_timestamp(value: str) -> str:
    try:
        datetime.fromisoformat(value)
    except ValueError:
        raise PydanticCustomError("timestamp", "must be a real calendar date and time") from None
    return value


def parse_timestamp(value: str) -> datetime:
    """Parse a header timestamp (already validated) into an aware UTC datetime."""
    return datetime.fromisoformat(value).astimezone(UTC)


def format_timestamp(moment: datetime) -> str:
    """RFC 3339 UTC with exactly six fractional digits and ``Z``: the form Sealtrail writes."""
    if moment.tzinfo is None:
        raise ValueError("timestamp must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


PATTERN_MESSAGES: dict[str, str] = {}
"""What a ``string_pattern_mismatch`` means, by the pattern that failed: the message a user reads."""


def _pattern(pattern: str, message: str) -> StringConstraints:
    """A pattern checked natively by pydantic-core; its failure is explained by ``message``."""
    PATTERN_MESSAGES[pattern] = message
    return StringConstraints(pattern=pattern)


TEXT_PATTERN = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"
"""Text without a Unicode ``Cc`` character (the complement of :data:`CONTROL_PATTERN`)."""

HeaderStr = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_HEADER_STRING),
    _pattern(TEXT_PATTERN, "must not contain control characters"),
]
EventId = Annotated[str, _pattern(EVENT_ID_PATTERN, "must be a lowercase UUIDv7 in 8-4-4-4-12 form")]
Timestamp = Annotated[
    str,
    StringConstraints(max_length=40),
    _pattern(TIMESTAMP_PATTERN, "must be an RFC 3339 UTC timestamp ending in 'Z'"),
    AfterValidator(_check_timestamp),
]
Period = Annotated[str, _pattern(PERIOD_PATTERN, "must be a UTC month 'YYYY-MM'")]
KeyId = Annotated[str, _pattern(KEY_ID_PATTERN, "must be 32 lowercase hex digits")]
DefHash = Annotated[str, _pattern(DEF_HASH_PATTERN, "must be 'sha256:' and 64 lowercase hex digits")]
# Look-ahead patterns are beyond pydantic-core's regex engine: these two are checked in Python.
TraceId = Annotated[
    str, AfterValidator(_matching(TRACE_ID_PATTERN, "must be 32 lowercase hex digits, not all zero"))
]
SpanId = Annotated[
    str, AfterValidator(_matching(SPAN_ID_PATTERN, "must be 16 lowercase hex digits, not all zero"))
]
Currency = Annotated[str, _pattern(CURRENCY_PATTERN, "must be an ISO 4217 code of 3 capital letters")]
Code = Annotated[str, _pattern(CODE_PATTERN, "must be a lowercase code of at most 64 characters")]
SubjectId = Annotated[
    str,
    StringConstraints(max_length=MAX_SUBJECT_LENGTH),
    AfterValidator(_matching(SUBJECT_PATTERN, "must look like 'scheme:identifier' without outer spaces")),
]
Count = Annotated[int, Field(ge=0, le=MAX_SAFE_INT)]


def _latency(value: object) -> int | float:
    # NaN and infinities fail the range test; a bool is neither type (strict).
    if (type(value) is int or type(value) is float) and 0 <= value <= MAX_SAFE_INT:
        return value
    raise PydanticCustomError("latency", "must be a number of milliseconds from 0 to 2^53-1 (a fraction is allowed)")


Latency = Annotated[int | float, PlainValidator(_latency, json_schema_input_type=float)]
"""Milliseconds: a non-negative JSON number, whole (``184``), fractional (``12.5``) or below one
(``0.042``). A fraction is the IEEE 754 double the number denotes (I-JSON, RFC 7493) and is
written into the entry in its RFC 8785 form (``12.50`` becomes ``12.5``, ``1e-3`` becomes
``0.001``); a whole number stays an integer."""
PositiveCount = Annotated[int, Field(ge=1, le=MAX_SAFE_INT)]
Payload = dict[str, Any]
"""A JSON object. Its values are not walked here (a Python call per value with ``JsonValue``):
they come from a JSON parser, and :func:`~sealtrail.core.validation.validate_batch` refuses any
value that has no RFC 8785 form when it canonicalises the payload."""


def _unique(values: list[str]) -> list[str]:
    if len(set(values)) != len(values):
        raise PydanticCustomError("unique_items", "must not repeat an item")
    return values


Subjects = Annotated[list[SubjectId], Field(max_length=MAX_SUBJECTS), AfterValidator(_unique)]
KeyIds = Annotated[list[KeyId], Field(max_length=MAX_KEY_IDS), AfterValidator(_unique)]
