"""Timestamps as whole microseconds since 1970-01-01T00:00:00Z: how the embedded SQLite database
stores ``entries.occurred_at`` (migration 0017). An integer of up to 8 bytes sorts as time does
and is a third of the 27-character text form in the row and in each index that holds it; the
conversion is exact both ways for the microsecond datetimes the ledger parses from headers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def to_micros(moment: datetime) -> int:
    """Microseconds since the Unix epoch of an aware datetime."""
    return (moment - _EPOCH) // _MICROSECOND


def from_micros(value: int) -> datetime:
    """The aware UTC datetime of a stored microsecond count."""
    return _EPOCH + timedelta(microseconds=value)
