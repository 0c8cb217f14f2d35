"""Time windows of the analytics API, aligned to the hourly rollups. Pure code.

Rollups count calls per UTC hour and per UTC day, so a window is a whole number of hours:
``from`` is rounded down and ``to`` up to the hour. A window reads whole days from the daily
rollup and the hours at either end from the hourly one (:func:`split`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sealtrail.errors import InvalidInputError

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
DEFAULT_SPAN = timedelta(hours=24)
MAX_SPAN = timedelta(days=400)
EARLIEST = datetime(2, 1, 1, tzinfo=UTC)
LATEST = datetime(9998, 12, 31, tzinfo=UTC)
"""Bounds of every time a query parameter may name: far enough from Python's year 1 and 9999
that rounding to hours or days, a default span or a drift baseline never leaves them."""


def floor_hour(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def ceil_hour(t: datetime) -> datetime:
    down = floor_hour(t)
    return down if down == t else down + HOUR


def floor_day(t: datetime) -> datetime:
    return floor_hour(t).replace(hour=0)


def ceil_day(t: datetime) -> datetime:
    down = floor_day(t)
    return down if down == t else down + DAY


@dataclass(frozen=True, slots=True)
class Window:
    """``[start, end)``, both on whole UTC hours."""

    start: datetime
    end: datetime

    @property
    def hours(self) -> int:
        return int((self.end - self.start) / HOUR)

    def hour_starts(self) -> list[datetime]:
        return [self.start + i * HOUR for i in range(self.hours)]


@dataclass(frozen=True, slots=True)
class Split:
    """Where a window's rows come from: hourly ranges at the edges, whole days in the middle."""

    hour_ranges: tuple[tuple[datetime, datetime], ...]
    day_range: tuple[datetime, datetime] | None


def parse_time(value: str, name: str) -> datetime:
    """An RFC 3339 time with an offset (``Z`` or ``±hh:mm``) in UTC; InvalidInputError otherwise."""
    try:
        t = datetime.fromisoformat(value.strip())
    except ValueError as e:
        raise InvalidInputError(f"{name} is not an RFC 3339 time", pointer=f"query:{name}") from e
    if t.tzinfo is None:
        raise InvalidInputError(f"{name} needs a UTC offset (e.g. Z)", pointer=f"query:{name}")
    return utc_time(t, name)


def utc_time(t: datetime, name: str) -> datetime:
    """``t`` in UTC (a naive ``t`` is taken as UTC), if within [EARLIEST, LATEST]; InvalidInputError
    (pointer ``query:<name>``) otherwise."""
    try:
        utc = t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)
    except OverflowError as e:
        raise InvalidInputError(f"{name} is out of range", pointer=f"query:{name}") from e
    if not EARLIEST <= utc <= LATEST:
        raise InvalidInputError(f"{name} must lie between {EARLIEST.date()} and {LATEST.date()} (UTC)",
                                pointer=f"query:{name}")
    return utc


def window_of(start: datetime | None, end: datetime | None, *, now: datetime,
              default_span: timedelta = DEFAULT_SPAN) -> Window:
    """The hour-aligned window for optional ``from``/``to`` (default: the ``default_span`` up to now)."""
    stop = ceil_hour(end if end is not None else now)
    first = floor_hour(start) if start is not None else stop - default_span
    if first >= stop:
        raise InvalidInputError("from must be before to")
    if stop - first > MAX_SPAN:
        raise InvalidInputError(f"a window spans at most {MAX_SPAN.days} days")
    return Window(first, stop)


def split(window: Window) -> Split:
    """Whole UTC days of ``window`` from the daily rollup, the rest from the hourly one."""
    first_day, last_day = ceil_day(window.start), floor_day(window.end)
    if first_day >= last_day:
        return Split(((window.start, window.end),), None)
    edges = tuple((a, b) for a, b in ((window.start, first_day), (last_day, window.end)) if a < b)
    return Split(edges, (first_day, last_day))
