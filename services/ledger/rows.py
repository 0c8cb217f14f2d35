"""Header → column values for the entries table, checked before a record gets an index.

A record whose header cannot be stored (bad event id, bad timestamps, wrong types) is poison:
it goes to the dead-letter topic and never consumes an index.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import NamedTuple

from sealtrail.core.record import SealedRecord
from sealtrail.errors import InvalidInputError

_TEXT_COLUMNS = ("agent_id", "session_id", "server_id", "tool_name", "tool_tier", "decision", "status")
_INT_COLUMNS = ("latency_ms", "cost_micros")
_MAX_INT = 2**63 - 1


class EntryColumns(NamedTuple):
    """The searchable copy of a header, in database types (a tuple: cheap on the hot path)."""

    event_id: uuid.UUID
    type: str
    occurred_at: datetime
    received_at: datetime
    text: tuple[str | None, ...]
    ints: tuple[int | None, ...]


def entry_columns(record: SealedRecord) -> EntryColumns:
    """Check and convert a record's header; raise InvalidInputError naming the field."""
    h = record.header
    try:
        event_id = uuid.UUID(str(h["event_id"]))
    except ValueError as e:
        raise InvalidInputError("event_id is not a UUID", pointer="/header/event_id") from e
    if h.get("tenant") != record.log and not record.log.startswith(f"{h.get('tenant')}/"):
        raise InvalidInputError("header tenant does not own the log", pointer="/header/tenant")
    return EntryColumns(
        event_id=event_id,
        type=_text(h, "type", required=True) or "",
        occurred_at=_time(h, "occurred_at"),
        received_at=_time(h, "received_at"),
        text=_texts(h),
        ints=tuple(_int(h, c) for c in _INT_COLUMNS),
    )


def _texts(h: dict[str, object]) -> tuple[str | None, ...]:
    values = tuple(h.get(c) for c in _TEXT_COLUMNS)
    for name, v in zip(_TEXT_COLUMNS, values, strict=True):
        if v is not None and type(v) is not str:
            raise InvalidInputError(f"{name} must be a string", pointer=f"/header/{name}")
    return values  # type: ignore[return-value]  # checked just above


def _text(h: dict[str, object], name: str, *, required: bool = False) -> str | None:
    v = h.get(name)
    if v is None and not required:
        return None
    if not isinstance(v, str):
        raise InvalidInputError(f"{name} must be a string", pointer=f"/header/{name}")
    return v


def _int(h: dict[str, object], name: str) -> int | None:
    v = h.get(name)
    if v is None:
        return None
    if type(v) is not int or not 0 <= v <= _MAX_INT:
        raise InvalidInputError(f"{name} must be a non-negative integer", pointer=f"/header/{name}")
    return v


def _time(h: dict[str, object], name: str) -> datetime:
    v = h.get(name)
    if not isinstance(v, str):
        raise InvalidInputError(f"{name} must be an RFC 3339 string", pointer=f"/header/{name}")
    try:
        t = datetime.fromisoformat(v)
    except ValueError as e:
        raise InvalidInputError(f"{name} is not RFC 3339", pointer=f"/header/{name}") from e
    if t.tzinfo is None:
        raise InvalidInputError(f"{name} lacks a UTC offset", pointer=f"/header/{name}")
    return t


TEXT_COLUMN_NAMES = _TEXT_COLUMNS
INT_COLUMN_NAMES = _INT_COLUMNS
