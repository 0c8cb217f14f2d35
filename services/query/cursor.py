"""Opaque keyset cursors: the position after the last row of a page, never an offset.

A cursor is unpadded base64url of a small JSON array ``[kind, occurred_at, log_id, idx]``. Its
content is not a contract: clients pass back what they were given. A malformed cursor, or one
minted for another listing, is a 400.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime

import orjson

from sealtrail.errors import InvalidInputError


@dataclass(frozen=True, slots=True)
class Position:
    """A row's place in a listing ordered by (occurred_at, log_id, idx)."""

    occurred_at: datetime | None
    log_id: str
    idx: int


def encode_cursor(kind: str, pos: Position) -> str:
    stamp = pos.occurred_at.isoformat() if pos.occurred_at is not None else None
    raw = orjson.dumps([kind, stamp, pos.log_id, pos.idx])
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(kind: str, cursor: str | None) -> Position | None:
    """The position in ``cursor`` (None for the first page); InvalidInputError when it is not one."""
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        got, stamp, log_id, idx = orjson.loads(raw)
        when = datetime.fromisoformat(stamp) if stamp is not None else None
    except (binascii.Error, ValueError, TypeError, orjson.JSONDecodeError) as e:
        raise InvalidInputError("cursor is not one this service issued", pointer="/cursor") from e
    if got != kind or not isinstance(log_id, str) or type(idx) is not int:
        raise InvalidInputError("cursor belongs to another listing", pointer="/cursor")
    return Position(when, log_id, idx)
