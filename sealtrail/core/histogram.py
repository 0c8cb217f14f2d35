"""Fixed log-scale latency histograms: mergeable by elementwise sums, percentiles from the merge.

Bucket 0 holds latencies under 1 ms (0 and the sub-millisecond ones); bucket ``k``
(1 ≤ k < LAST) holds ``[2^((k-1)/2), 2^(k/2))`` ms, so each bucket is √2 ≈ 1.41 times as wide
as the one before; the last bucket holds everything from ``2^((LAST-1)/2)`` ms (about 35
minutes) up. A percentile is interpolated geometrically inside its bucket, so it is within a
factor √2 of the true value (typically much closer). Pure code.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

BUCKETS = 44
LAST = BUCKETS - 1
_LAST_LOW = 2 ** ((LAST - 1) / 2)


def bucket_of(latency_ms: float) -> int:
    """The bucket of a non-negative latency in milliseconds, whole or fractional."""
    if latency_ms < 1:
        return 0
    if type(latency_ms) is int:
        # floor(2·log2(ms)) exactly, without floating point: the largest j with 2^j <= ms².
        j = (latency_ms * latency_ms).bit_length() - 1
        return min(j + 1, LAST)
    # The same for a double n/d, exactly: ms² = n²/d² lies in (2^(a-b-1), 2^(a-b+1)) where a and b
    # are the bit lengths of n² and d², so floor(log2(ms²)) is a-b or one less.
    n, d = latency_ms.as_integer_ratio()
    n, d = n * n, d * d
    j = n.bit_length() - d.bit_length()
    if n < d << j:
        j -= 1
    return min(j + 1, LAST)


def bounds(bucket: int) -> tuple[float, float]:
    """``[low, high)`` of a bucket in ms; the last bucket's high is infinite."""
    if bucket == 0:
        return 0.0, 1.0
    low = 2 ** ((bucket - 1) / 2)
    return low, (math.inf if bucket == LAST else 2 ** (bucket / 2))


def empty() -> list[int]:
    return [0] * BUCKETS


def add(hist: list[int], latency_ms: float) -> None:
    """Count one latency into ``hist`` in place."""
    hist[bucket_of(latency_ms)] += 1


def merge(hists: Iterable[Sequence[int]]) -> list[int]:
    """Elementwise sum of histograms."""
    out = empty()
    for h in hists:
        for i, n in enumerate(h):
            out[i] += n
    return out


def percentile(hist: Sequence[int], q: float) -> float | None:
    """The ``q``-quantile (0 < q ≤ 1) of the latencies counted in ``hist``; None when empty."""
    if not 0 < q <= 1:
        raise ValueError("q must be in (0, 1]")
    total = sum(hist)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for b, n in enumerate(hist):
        if n and seen + n >= rank:
            return _inside(b, (rank - seen) / n)
        seen += n
    return _inside(LAST, 1.0)  # pragma: no cover - rank <= total always lands above


def _inside(bucket: int, fraction: float) -> float:
    if bucket == 0:
        return 0.0
    if bucket == LAST:
        return _LAST_LOW
    low, high = bounds(bucket)
    # Rounded down to the microsecond, so that a bucket's top never rounds up into the next one.
    value: float = low * (high / low) ** fraction
    return math.floor(value * 1000) / 1000
