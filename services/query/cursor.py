"""Opaque keyset cursors: the position after the last row of a page, never an offset.

A cursor is unpadded base64url of a small JSON array ``[kind, occurred_at, log_id, idx]``. Its
content is not a contract: clients pass back what they were given. A malformed cursor, or one
minted for another listing, is a 400; so is one whose content no page of that listing could have
produced (a missing or unrepresentable time, an index outside 0..2^63-1), since the stores bind
every field as it is.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

from sealtrail.errors import InvalidInputError

MAX_INDEX = 2**63 - 1
TIMED_KINDS = frozenset({"calls", "session"})
"""Listings ordered by (occurred_at, log_id, idx); the others (``export``) by (log_id, idx) alone."""
_LOG_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True, slots=True)
class Position:
    """A row's place in a listing ordered by (occurred_at, log_id, idx)."""

    occurred_at: datetime | None
    log_id: str
    idx: int

    def time(self) -> datetime:
        """The time of a timed listing's position (:func:`decode_cursor` gives those one)."""
        if self.occurred_at is None:
            raise InvalidInputError("cursor is not one this service issued")
        return self.occurred_at


def encode_cursor(kind: str, pos: Position) -> str:
    stamp = pos.occurred_at.isoformat() if pos.occurred_at is not None else None
    raw = orjson.dumps([kind, stamp, pos.log_id, pos.idx])
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(kind: str, cursor: str | None, *, pointer: str = "/cursor") -> Position | None:
    """The position in ``cursor`` (None for the first page); InvalidInputError when it is not one.

    The position returned MUST be one a page of ``kind`` could end on: a UTC time exactly for
    the timed kinds, a plain log id and an index in 0..2^63-1.
    """
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        got, stamp, log_id, idx = orjson.loads(raw)
    except (binascii.Error, ValueError, TypeError, orjson.JSONDecodeError) as e:
        raise InvalidInputError("cursor is not one this service issued", pointer=pointer) from e
    if got != kind:
        raise InvalidInputError("cursor belongs to another listing", pointer=pointer)
    if (not isinstance(log_id, str) or not _LOG_ID.match(log_id) or type(idx) is not int
            or not 0 <= idx <= MAX_INDEX):
        raise InvalidInputError("cursor is not one this service issued", pointer=pointer)
    return Position(_time(kind, stamp, pointer), log_id, idx)


def _time(kind: str, stamp: object, pointer: str) -> datetime | None:
    if kind not in TIMED_KINDS:
        if stamp is not None:
            raise InvalidInputError("cursor is not one this service issued", pointer=pointer)
        return None
    try:
        when = datetime.fromisoformat(stamp) if isinstance(stamp, str) else None
        if when is None or when.tzinfo is None:
            raise ValueError("a timed cursor needs a time with an offset")
        return when.astimezone(UTC)
    except (ValueError, OverflowError) as e:
        raise InvalidInputError("cursor is not one this service issued", pointer=pointer) from e
