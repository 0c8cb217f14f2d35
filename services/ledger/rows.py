"""Header → column values for the entries table, checked before a record gets an index.

A record whose header cannot be stored (bad event id, bad timestamps, wrong types) is poison:
it goes to the dead-letter topic and never consumes an index.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import NamedTuple, NoReturn

from sealtrail.core.record import SealedRecord
from sealtrail.errors import InvalidInputError

_FastUUID: type[uuid.UUID]
try:  # asyncpg's C UUID: a uuid.UUID subclass, ten times quicker to parse, hash and encode
    from asyncpg.pgproto.pgproto import UUID as _PgUUID

    _FastUUID = _PgUUID
except ImportError:  # pragma: no cover - the server extra is not installed
    _FastUUID = uuid.UUID

_TEXT_COLUMNS = ("agent_id", "session_id", "server_id", "tool_name", "tool_tier", "decision", "status")
_INT_COLUMNS = ("latency_ms", "cost_micros")
_NUMBER_COLUMNS = ("latency_ms",)  # may hold a fraction: double precision in PostgreSQL
_MAX_INT = 2**63 - 1
_fromisoformat = datetime.fromisoformat


class EntryColumns(NamedTuple):
    """The searchable copy of a header, in database types (a tuple: cheap on the hot path)."""

    event_id: uuid.UUID
    type: str
    occurred_at: datetime
    received_at: datetime
    text: tuple[str | None, ...]
    ints: tuple[int | float | None, ...]  # latency_ms (a number), cost_micros (an integer)
    key_ids: list[str] = []  # noqa: RUF012  # a NamedTuple default, never mutated


def entry_columns(record: SealedRecord) -> EntryColumns:
    """Check and convert a record's header; raise InvalidInputError naming the field.

    Runs once per consumed record, so the well-formed case is straight-line code. Checks run in a
    fixed order (event id, tenant, type, times, text columns, integer columns, key ids) and the
    first bad field is the one named.
    """
    h = record.header
    event_id = _event_id(h["event_id"])
    get = h.get
    tenant = get("tenant")
    if tenant != record.log and not record.log.startswith(f"{tenant}/"):
        raise InvalidInputError("header tenant does not own the log", pointer="/header/tenant")
    type_ = get("type")
    if not isinstance(type_, str):
        raise InvalidInputError("type must be a string", pointer="/header/type")
    occurred_at = _time(get("occurred_at"), "occurred_at")
    received_at = _time(get("received_at"), "received_at")
    text = (get("agent_id"), get("session_id"), get("server_id"), get("tool_name"), get("tool_tier"),
            get("decision"), get("status"))
    for v in text:
        if v is not None and type(v) is not str:
            _refuse_texts(text)
    ints = latency, cost = (get("latency_ms"), get("cost_micros"))
    if latency is not None and ((type(latency) is not int and type(latency) is not float)
                                or not 0 <= latency <= _MAX_INT):
        _refuse_ints(ints)
    if cost is not None and (type(cost) is not int or not 0 <= cost <= _MAX_INT):
        _refuse_ints(ints)
    key_ids = get("key_ids")
    if type(key_ids) is not list:
        _refuse_key_ids()
    for k in key_ids:
        if type(k) is not str:
            _refuse_key_ids()
    return EntryColumns(event_id, type_, occurred_at, received_at, text, ints, key_ids)


def _event_id(raw: object) -> uuid.UUID:
    s = raw if type(raw) is str else str(raw)
    try:
        # The C parser accepts 32 hex digits with hyphens anywhere: a subset of what uuid.UUID
        # accepts, with the same value. uuid.UUID decides everything else ("{...}", "urn:uuid:").
        return _FastUUID(s)
    except ValueError:
        pass
    try:
        return uuid.UUID(s)
    except ValueError as e:
        raise InvalidInputError("event_id is not a UUID", pointer="/header/event_id") from e


def _refuse_texts(values: tuple[object, ...]) -> None:
    for name, v in zip(_TEXT_COLUMNS, values, strict=True):
        if v is not None and type(v) is not str:
            raise InvalidInputError(f"{name} must be a string", pointer=f"/header/{name}")


def _refuse_ints(values: tuple[object, ...]) -> None:
    for name, v in zip(_INT_COLUMNS, values, strict=True):
        if name in _NUMBER_COLUMNS and (type(v) is float and 0 <= v <= _MAX_INT):
            continue  # a fractional latency (NaN fails the range test)
        if v is not None and (type(v) is not int or not 0 <= v <= _MAX_INT):
            kind = "number" if name in _NUMBER_COLUMNS else "integer"
            raise InvalidInputError(f"{name} must be a non-negative {kind}", pointer=f"/header/{name}")


def _refuse_key_ids() -> NoReturn:
    raise InvalidInputError("key_ids must be an array of strings", pointer="/header/key_ids")


def _time(v: object, name: str) -> datetime:
    if not isinstance(v, str):
        raise InvalidInputError(f"{name} must be an RFC 3339 string", pointer=f"/header/{name}")
    try:
        t = _fromisoformat(v)
    except ValueError as e:
        raise InvalidInputError(f"{name} is not RFC 3339", pointer=f"/header/{name}") from e
    if t.tzinfo is None:
        raise InvalidInputError(f"{name} lacks a UTC offset", pointer=f"/header/{name}")
    return t


TEXT_COLUMN_NAMES = _TEXT_COLUMNS
INT_COLUMN_NAMES = _INT_COLUMNS
NUMBER_COLUMN_NAMES = _NUMBER_COLUMNS
