"""Retry delays: exponential with jitter, bounded, never sooner than the server's Retry-After."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

MAX_RETRY_AFTER_S = 300.0
"""A Retry-After longer than this is capped (a broken proxy must not stall a gateway for hours)."""


@dataclass(frozen=True, slots=True)
class Backoff:
    """``delay(n)`` for the n-th retry (0-based): ``min(cap, base * factor**n)`` scaled by a random
    factor in ``[1 - jitter, 1]``, and at least the server's Retry-After (capped at
    :data:`MAX_RETRY_AFTER_S`)."""

    base_s: float = 0.2
    factor: float = 2.0
    cap_s: float = 30.0
    jitter: float = 0.5

    def delay(self, attempt: int, *, retry_after: float | None = None,
              rand: Callable[[], float] = random.random) -> float:
        exponential = min(self.cap_s, self.base_s * self.factor ** max(0, attempt))
        jittered = exponential * (1.0 - self.jitter * rand())
        if retry_after is None:
            return jittered
        return max(jittered, min(max(0.0, retry_after), MAX_RETRY_AFTER_S))


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date); None if absent or bad."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
