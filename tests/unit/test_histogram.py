"""Latency histograms: exact bucket boundaries, mergeability, and percentiles within a bucket's width."""

from __future__ import annotations

import math

from hypothesis import example, given
from hypothesis import strategies as st

from sealtrail.core import histogram


def test_bucket_boundaries_are_exact_powers_of_root_two() -> None:
    """0 ms has its own bucket; bucket k starts at 2^((k-1)/2) ms, computed without rounding error."""
    assert histogram.bucket_of(0) == 0
    assert histogram.bucket_of(1) == 1
    assert histogram.bucket_of(2) == 3
    assert histogram.bucket_of(3) == 4
    assert histogram.bucket_of(4) == 5
    assert histogram.bucket_of(1024) == 21
    assert histogram.bucket_of(1023) == 20
    assert histogram.bucket_of(10**12) == histogram.LAST


@given(st.integers(min_value=0, max_value=2**40))
def test_every_latency_falls_inside_its_bucket(ms: int) -> None:
    """A latency lies in [low, high) of the bucket it is counted in."""
    low, high = histogram.bounds(histogram.bucket_of(ms))
    assert low <= ms < high or (ms == 0 and low == 0)


@given(st.lists(st.integers(min_value=0, max_value=10**7), min_size=1, max_size=300),
       st.sampled_from([0.5, 0.95, 0.99]))
@example([32, 46], 0.5)  # the top of a bucket once rounded up past 32·√2
def test_percentile_is_within_a_bucket_of_the_exact_one(values: list[int], q: float) -> None:
    """The estimate lies within a factor √2 of the exact nearest-rank percentile (or both are 0)."""
    hist = histogram.empty()
    for v in values:
        histogram.add(hist, v)
    exact = sorted(values)[max(0, math.ceil(q * len(values)) - 1)]
    got = histogram.percentile(hist, q)
    assert got is not None
    if exact == 0:
        assert got == 0
    elif exact < 2**21:
        assert exact / math.sqrt(2) - 1e-6 <= got <= exact * math.sqrt(2) + 1e-6


@given(st.lists(st.integers(min_value=0, max_value=10**6), max_size=100),
       st.lists(st.integers(min_value=0, max_value=10**6), max_size=100))
def test_merging_equals_counting_together(a: list[int], b: list[int]) -> None:
    """Merged histograms of two sets equal the histogram of their union."""
    ha, hb, both = histogram.empty(), histogram.empty(), histogram.empty()
    for v in a:
        histogram.add(ha, v)
        histogram.add(both, v)
    for v in b:
        histogram.add(hb, v)
        histogram.add(both, v)
    assert histogram.merge([ha, hb]) == both


def test_empty_histogram_has_no_percentile() -> None:
    """No samples, no percentile."""
    assert histogram.percentile(histogram.empty(), 0.5) is None
