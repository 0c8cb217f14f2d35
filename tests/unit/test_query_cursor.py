"""Keyset cursors of the query API: opaque, round-tripping, bound to their listing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sealtrail.errors import InvalidInputError
from services.query.cursor import Position, decode_cursor, encode_cursor
from services.query.shredder import expired_periods
from tests.support.query_bad_input import cursor


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


@pytest.mark.parametrize("fields", [
    ["calls", None, "acme", 1], ["session", None, "acme", 1], ["calls", "2026-01-01T00:00:00", "acme", 1],
    ["calls", "2026-01-01T00:00:00+00:00", "acme", 2**63], ["calls", "2026-01-01T00:00:00+00:00", "acme", -1],
    ["calls", "0001-01-01T00:00:00+01:00", "acme", 1], ["calls", 5, "acme", 1],
    ["calls", "2026-01-01T00:00:00+00:00", "", 1], ["calls", "2026-01-01T00:00:00+00:00", "a\x00", 1],
    ["export", None, "acme", 2**64 - 1], ["export", "2026-01-01T00:00:00+00:00", "acme", 1],
    ["export", None, "acme", True],
])
def test_cursor_content_no_page_could_end_on_is_refused(fields: list[object]) -> None:
    """A decoded cursor with a missing, naive or overflowing time, an index outside 0..2^63-1 or a
    strange log id is bad input (pointer as asked), never a position the stores would choke on."""
    with pytest.raises(InvalidInputError) as refused:
        decode_cursor(str(fields[0]), cursor(*fields), pointer="query:cursor")
    assert refused.value.pointer == "query:cursor"


def test_decoded_times_are_utc() -> None:
    """A time with another offset comes back as the same instant in UTC; export has none."""
    pos = decode_cursor("calls", cursor("calls", "2026-01-01T05:00:00+05:00", "acme", 7))
    assert pos == Position(datetime(2026, 1, 1, tzinfo=UTC), "acme", 7) and pos.time().tzinfo is UTC
    assert decode_cursor("export", cursor("export", None, "acme", 2**63 - 1)) == Position(None, "acme", 2**63 - 1)


def test_retention_keeps_whole_months() -> None:
    """With N months of retention, month P expires once month P+N+1 has begun (UTC)."""
    now = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)
    periods = ["2025-12", "2026-01", "2026-02", "2026-03"]
    assert expired_periods(periods, now=now, months=1) == ["2025-12", "2026-01"]
    assert expired_periods(periods, now=now, months=2) == ["2025-12"]
    assert expired_periods(periods, now=datetime(2026, 2, 28, 23, 59, tzinfo=UTC), months=1) == ["2025-12"]
