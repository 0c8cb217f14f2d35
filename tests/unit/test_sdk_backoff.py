"""Retry delays of the SDK: exponential, jittered, capped, and never before Retry-After."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from sealtrail.sdk.backoff import MAX_RETRY_AFTER_S, Backoff, parse_retry_after


def test_schedule_grows_then_caps() -> None:
    """Without jitter the delays double from base to the cap."""
    b = Backoff(base_s=0.5, factor=2, cap_s=4, jitter=0)
    assert [b.delay(n) for n in range(6)] == [0.5, 1, 2, 4, 4, 4]


def test_jitter_stays_in_its_band() -> None:
    """With jitter j a delay lies in [(1 - j) * d, d]."""
    b = Backoff(base_s=1, factor=2, cap_s=30, jitter=0.5)
    assert b.delay(3, rand=lambda: 0.0) == 8 and b.delay(3, rand=lambda: 1.0) == 4


def test_retry_after_is_a_floor_and_is_capped() -> None:
    """A server's Retry-After is never undercut, and an absurd one is capped."""
    b = Backoff(base_s=0.1, jitter=0)
    assert b.delay(0, retry_after=2) == 2
    assert b.delay(10, retry_after=0.5) == b.delay(10)
    assert b.delay(0, retry_after=10**6) == MAX_RETRY_AFTER_S


def test_parse_retry_after() -> None:
    """Delta-seconds and HTTP-dates parse; anything else is ignored."""
    now = datetime(2025, 1, 1, tzinfo=UTC)
    assert parse_retry_after("3") == 3
    assert parse_retry_after(format_datetime(now + timedelta(seconds=7), usegmt=True), now=now) == 7
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
