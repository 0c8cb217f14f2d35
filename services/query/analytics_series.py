"""Time series of call figures over any window, with a bounded number of points. Pure code.

A window of up to :data:`MAX_POINTS` hours is charted hour by hour; a longer one in the smallest
bucket of :data:`BUCKET_HOURS` that keeps it within :data:`MAX_POINTS` points (30 days: 6 h; 400
days: 2 days). Buckets of a day or more are read from the daily rollups, so their window is
widened to whole UTC days; shorter ones from the hourly rollups. Points are dense: a bucket
without calls is a point of zeros, and the last point may be shorter than a bucket.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sealtrail.errors import InvalidInputError
from services.query.ports import CallTotals
from services.query.windows import DAY, HOUR, Window, ceil_day, floor_day

MAX_POINTS = 200
BUCKET_HOURS = (1, 2, 3, 6, 12, 24, 48, 96, 168)


@dataclass(frozen=True, slots=True)
class Plan:
    """How a series is read: its (possibly widened) window, bucket, and which rollup."""

    window: Window
    bucket: timedelta

    @property
    def daily(self) -> bool:
        return self.bucket >= DAY

    @property
    def points(self) -> int:
        return -(-(self.window.end - self.window.start) // self.bucket)

    def starts(self) -> list[datetime]:
        return [self.window.start + k * self.bucket for k in range(self.points)]


def plan(window: Window) -> Plan:
    """The smallest bucket that keeps ``window`` within :data:`MAX_POINTS` points."""
    for hours in BUCKET_HOURS:
        bucket = hours * HOUR
        candidate = Window(floor_day(window.start), ceil_day(window.end)) if bucket >= DAY else window
        found = Plan(candidate, bucket)
        if found.points <= MAX_POINTS:
            return found
    raise InvalidInputError(f"a series has at most {MAX_POINTS} points of {BUCKET_HOURS[-1]} hours")


def fold(p: Plan, by_bucket: dict[datetime, CallTotals]) -> list[tuple[datetime, CallTotals]]:
    """Each point's start and the sum of the rollup buckets within it, zeros where none."""
    points = [(start, CallTotals()) for start in p.starts()]
    for t, totals in by_bucket.items():
        k = (t - p.window.start) // p.bucket
        if 0 <= k < len(points):
            points[k][1].absorb(totals)
    return points
