"""Drift scoring against a tool's own baseline: spikes are flagged, steady noise is not."""

from __future__ import annotations

import math
import random
import statistics

from hypothesis import given, settings
from hypothesis import strategies as st

from sealtrail.core import histogram
from services.query import drift
from services.query.drift import HourStats, score


def hour(calls: int, *, errors: int = 0, denied: int = 0, latency: int = 50, cost: int = 0) -> HourStats:
    hist = histogram.empty()
    hist[histogram.bucket_of(latency)] = calls
    return HourStats(calls=calls, executed=calls - denied, errors=errors, denied=denied, hist=hist,
                     costs={"USD": cost} if cost else {})


def poisson(rnd: random.Random, mean: float) -> int:
    # Knuth's method is fine for the small means used here.
    limit, k, p = 2.718281828459045 ** -mean, 0, 1.0
    while True:
        p *= rnd.random()
        if p <= limit:
            return k
        k += 1


def flagged(baseline: list[HourStats], recent: list[HourStats]) -> set[str]:
    return {s.metric for s in score(baseline, recent) if s.flagged}


def test_fifty_times_the_call_rate_is_flagged() -> None:
    """A tool called 50x its hourly baseline is flagged on call rate (and its cost rate with it)."""
    baseline = [hour(10, cost=1000) for _ in range(168)]
    recent = [hour(500, cost=50_000)]
    assert flagged(baseline, recent) == {"call_rate", "cost_rate"}
    [s] = [s for s in score(baseline, recent) if s.metric == "call_rate"]
    assert (s.baseline, s.recent, s.ratio) == (10, 500, 50)


def test_steady_noisy_tools_are_not_flagged() -> None:
    """Two hundred tools with Poisson traffic and 2% errors raise no flag at all."""
    rnd = random.Random(42)
    for _ in range(200):
        mean = rnd.choice([5, 30, 200])
        series = []
        for _ in range(169):
            n = poisson(rnd, mean)
            errors = sum(rnd.random() < 0.02 for _ in range(n))
            series.append(hour(n, errors=errors, latency=rnd.choice([40, 50, 60])))
        assert flagged(series[:168], series[168:]) == set()


def test_error_deny_and_latency_shifts_are_flagged() -> None:
    """A jump from 1% to 30% errors, from 0 to 25% denials and from 50 ms to 400 ms p95 are each flagged."""
    baseline = [hour(100, errors=1) for _ in range(168)]
    assert flagged(baseline, [hour(100, errors=30)]) == {"error_rate"}
    assert flagged(baseline, [hour(100, errors=1, denied=25)]) == {"deny_rate"}
    assert flagged(baseline, [hour(100, errors=1, latency=400)]) == {"latency_p95"}


def test_small_numbers_and_missing_baselines_are_not_scored() -> None:
    """Fewer than 20 recent calls, or a tool with no baseline, gives no score, so no finding."""
    assert score([hour(1) for _ in range(168)], [hour(19)]) == []
    assert score([HourStats() for _ in range(168)], [hour(1000)]) == []
    assert score([], [hour(10)]) == []


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=10**15), max_size=60), st.integers(min_value=0, max_value=60))
def test_pstdev_from_sums_is_statistics_pstdev(values: list[int], zeros: int) -> None:
    """The population standard deviation from exact integer sums is the float statistics.pstdev gives
    for the same values padded with zero hours."""
    n = len(values) + zeros
    if n:
        assert drift.pstdev(values, n) == statistics.pstdev([*values, *[0] * zeros])


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 60), st.integers(0, 60), st.integers(0, 5), st.integers(0, 5),
                          st.lists(st.integers(0, 9), min_size=histogram.BUCKETS, max_size=histogram.BUCKETS)),
                min_size=24, max_size=48),
       st.integers(0, 200))
def test_a_summarised_baseline_scores_as_the_hours_do(hours: list[tuple[int, int, int, int, list[int]]],
                                                      spike: int) -> None:
    """score_summary over summarize(hours), in any order, equals score over the dense hours."""
    dense = [drift.HourStats(c, min(c, e), min(c, e, err), min(c, d), h, {"USD": c * 7} if c % 3 else {})
             for c, e, err, d, h in hours]
    recent = [drift.HourStats(spike, spike, spike // 3, spike // 5, [spike] * histogram.BUCKETS, {"USD": spike})]
    summary = drift.summarize(len(dense), [h for h in reversed(dense) if h.calls or sum(h.hist)])
    assert drift.score_summary(summary, recent) == drift.score(dense, recent)


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=10**12), max_size=168), st.integers(min_value=0, max_value=168),
       st.lists(st.one_of(st.floats(min_value=0, max_value=10**7, allow_nan=False),
                          st.sampled_from([0.0, 0.5, 1.0, 1.5, 2.0, 3.25, 7.0, 0.1, 0.3])), max_size=168))
def test_moments_and_latency_spread_give_the_floats_of_the_hourly_lists(values: list[int], zeros: int,
                                                                         p95s: list[float]) -> None:
    """The baseline keeps sums, not hourly lists: the mean, σ, median and MAD drift derives from them
    are the floats that math.fsum, statistics.pstdev and statistics.median give over the lists."""
    n = len(values) + zeros
    if n:
        m = drift.Moments.of(values)
        assert float(m.sum) / n == math.fsum(values) / n
        assert drift.pstdev(m, n) == statistics.pstdev([*values, *[0] * zeros])
    spread = drift.latency_spread(p95s)
    if not p95s:
        assert spread is None
    else:
        center = max(statistics.median(p95s), 1.0)
        assert spread == (center, statistics.median([abs(v - center) for v in p95s]))
