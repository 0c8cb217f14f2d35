"""sealtrail.infra.micros: the integer form of entries.occurred_at in SQLite is exact and sorts as
the fixed-width text form did."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from sealtrail.infra.micros import from_micros, to_micros
from sealtrail.infra.sqlite import to_db_time

moments = st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(9999, 12, 31),
                       timezones=st.just(UTC))


@given(moments)
def test_round_trip_is_exact(moment: datetime) -> None:
    """Every microsecond datetime comes back equal, in UTC."""
    assert from_micros(to_micros(moment)) == moment


@given(moments, moments)
def test_integer_order_is_text_order(a: datetime, b: datetime) -> None:
    """Comparisons of the integers agree with those of the stored text they replace."""
    assert (to_micros(a) < to_micros(b)) == (to_db_time(a) < to_db_time(b))
    assert (to_micros(a) == to_micros(b)) == (to_db_time(a) == to_db_time(b))


def test_known_value() -> None:
    """2026-11-02T09:00:00.000001Z is 1,793,610,000,000,001 microseconds after the epoch."""
    assert to_micros(datetime(2026, 11, 2, 9, 0, 0, 1, tzinfo=UTC)) == 1_793_610_000_000_001
