"""Analytics windows: hour alignment, defaults, limits, and the hourly/daily split."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sealtrail.errors import InvalidInputError
from services.query.windows import Window, parse_time, split, window_of

NOW = datetime(2025, 3, 3, 10, 25, tzinfo=UTC)


def test_window_rounds_outwards_to_whole_hours() -> None:
    """``from`` rounds down, ``to`` rounds up; the default is the 24 hours up to now."""
    w = window_of(parse_time("2025-03-01T08:30:00+01:00", "from"), parse_time("2025-03-02T00:00:01Z", "to"),
                  now=NOW)
    assert (w.start, w.end) == (datetime(2025, 3, 1, 7, tzinfo=UTC), datetime(2025, 3, 2, 1, tzinfo=UTC))
    d = window_of(None, None, now=NOW)
    assert (d.start, d.end, d.hours) == (datetime(2025, 3, 2, 11, tzinfo=UTC), datetime(2025, 3, 3, 11, tzinfo=UTC), 24)


def test_bad_windows_are_refused() -> None:
    """Reversed, oversized, offset-less or unparsable times get a clear error."""
    with pytest.raises(InvalidInputError, match="before"):
        window_of(NOW, NOW - timedelta(hours=2), now=NOW)
    with pytest.raises(InvalidInputError, match="at most"):
        window_of(NOW - timedelta(days=500), NOW, now=NOW)
    with pytest.raises(InvalidInputError, match="offset"):
        parse_time("2025-03-01T00:00:00", "from")
    with pytest.raises(InvalidInputError, match="RFC 3339"):
        parse_time("yesterday", "to")


def test_split_reads_whole_days_from_the_daily_rollup() -> None:
    """Whole UTC days come from the daily rollup, the ragged ends from the hourly one."""
    h = lambda d, hh: datetime(2025, 3, d, hh, tzinfo=UTC)  # noqa: E731
    s = split(Window(h(1, 7), h(4, 5)))
    assert s.day_range == (h(2, 0), h(4, 0))
    assert s.hour_ranges == ((h(1, 7), h(2, 0)), (h(4, 0), h(4, 5)))
    assert split(Window(h(1, 7), h(2, 5))).day_range is None
    aligned = split(Window(h(1, 0), h(3, 0)))
    assert aligned.day_range == (h(1, 0), h(3, 0)) and aligned.hour_ranges == ()
