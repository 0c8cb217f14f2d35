"""Keyset cursors of the query API: opaque, round-tripping, bound to their listing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sealtrail.errors import InvalidInputError
from services.query.cursor import Position, decode_cursor, encode_cursor
from services.query.shredder import expired_periods


def test_cursor_round_trips_and_refuses_other_listings() -> None:
    """A cursor decodes to the position it was made from, only for its own listing."""
    pos = Position(datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC), "acme", 42)
    cursor = encode_cursor("calls", pos)
    assert decode_cursor("calls", cursor) == pos
    assert decode_cursor("calls", None) is None
    with pytest.raises(InvalidInputError):
        decode_cursor("session", cursor)
    for forged in ("", "!!!", "bm90LWEtY3Vyc29y", encode_cursor("calls", pos)[:-3]):
        with pytest.raises(InvalidInputError):
            decode_cursor("calls", forged)


def test_retention_keeps_whole_months() -> None:
    """With N months of retention, month P expires once month P+N+1 has begun (UTC)."""
    now = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)
    periods = ["2025-12", "2026-01", "2026-02", "2026-03"]
    assert expired_periods(periods, now=now, months=1) == ["2025-12", "2026-01"]
    assert expired_periods(periods, now=now, months=2) == ["2025-12"]
    assert expired_periods(periods, now=datetime(2026, 2, 28, 23, 59, tzinfo=UTC), months=1) == ["2025-12"]
