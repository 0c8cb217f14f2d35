"""Drift scoring: does a tool's recent behaviour depart from its own baseline? Pure code.

A tool is compared with itself: its hourly figures over the baseline window (by default the 7
days before the recent window, empty hours counted as zero) against the recent window (by
default the last complete hour). Five metrics, each flagged only upwards and only with enough
evidence; the method and thresholds are documented in docs/analytics.md.

- ``call_rate`` and ``cost_rate`` (per currency): hourly mean μ and standard deviation σ of the
  baseline; recent rate r over k hours; ratio = r/μ; z = (r − μ)/se with
  se = max(σ, noise)/√k, noise = √max(μ, 1) for counts (Poisson) and 0.1·μ for cost.
- ``error_rate`` (errors+timeouts / executed calls) and ``deny_rate`` (denied / calls): pooled
  baseline proportion p0 against the recent proportion p over n calls; ratio = p/max(p0, 0.01);
  binomial z = (p − p0)/√(max(p0, 0.01)·(1 − p0)/n); also needs p − p0 ≥ 0.05.
- ``latency_p95``: median and MAD of the baseline's hourly p95s (hours with ≥ 10 timed calls)
  against the recent window's p95; spread = max(1.4826·MAD, 0.2·median).

A metric is flagged when the evidence minimums hold and either ratio ≥ 3, or z ≥ 4 with
ratio ≥ 1.5 (so a very steady baseline's small wobble is not news).
"""

from __future__ import annotations

import bisect
import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from sealtrail.core import histogram


@dataclass(frozen=True, slots=True)
class HourStats:
    """One tool's figures for one hour (or summed over several)."""

    calls: int = 0
    executed: int = 0
    errors: int = 0
    denied: int = 0
    hist: Sequence[int] = field(default_factory=histogram.empty)
    costs: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Thresholds:
    ratio: float = 3.0
    z: float = 4.0
    min_ratio_for_z: float = 1.5
    min_calls: int = 20
    min_events: int = 5
    min_rate_delta: float = 0.05
    rate_floor: float = 0.01
    min_latency_samples: int = 10
    latency_spread_floor: float = 0.2
    cost_noise: float = 0.1


@dataclass(frozen=True, slots=True)
class Score:
    """One metric of one tool: baseline against recent, and whether it is flagged."""

    metric: str
    baseline: float
    recent: float
    ratio: float
    z: float
    flagged: bool
    currency: str | None = None


def total(hours: Sequence[HourStats]) -> HourStats:
    """The sum of several hours."""
    costs: dict[str, int] = {}
    for h in hours:
        for cur, v in h.costs.items():
            costs[cur] = costs.get(cur, 0) + v
    return HourStats(sum(h.calls for h in hours), sum(h.executed for h in hours),
                     sum(h.errors for h in hours), sum(h.denied for h in hours),
                     histogram.merge(h.hist for h in hours), costs)


@dataclass(frozen=True, slots=True)
class Moments:
    """The sum and the sum of squares of hourly values (calls, or cost micros of one currency): with
    the number of hours, all that the mean and the population standard deviation need, exactly."""

    sum: int = 0
    sum_sq: int = 0

    @classmethod
    def of(cls, values: Iterable[int]) -> Moments:
        s = sq = 0
        for v in values:
            s, sq = s + v, sq + v * v
        return cls(s, sq)


@dataclass(frozen=True, slots=True)
class Baseline:
    """What scoring needs of a tool's baseline of ``hours`` hours: totals, the :class:`Moments` of
    the hourly call counts and of the hourly cost per currency (hours without any count as zero),
    and the median and median absolute deviation (:func:`latency_spread`) of the latency p95s of
    the hours with at least ``Thresholds.min_latency_samples`` timed calls (``None``: no such hour)."""

    hours: int
    calls: int = 0
    executed: int = 0
    errors: int = 0
    denied: int = 0
    hourly_calls: Moments = Moments()
    hourly_costs: Mapping[str, Moments] = field(default_factory=dict)
    latency: tuple[float, float] | None = None


def latency_spread(p95s: Sequence[float]) -> tuple[float, float] | None:
    """(centre, MAD) of hourly p95s: centre = max(median, 1 ms), MAD = median of |p95 - centre|;
    ``None`` without any p95."""
    if not p95s:
        return None
    ordered = sorted(p95s)
    # Below 1 ms the histogram cannot tell latencies apart, so 1 ms is the smallest centre.
    center = max(_median_of_sorted(ordered), 1.0)
    return center, _median_deviation(ordered, center)


def _median_deviation(ordered: Sequence[float], center: float) -> float:
    """``statistics.median(abs(v - center) for v in ordered)`` of sorted, non-empty ``ordered``.
    The deviations fall towards ``center`` and rise after it (``center - v`` is exactly
    ``abs(v - center)`` below it), so merging the two sides outwards from ``center`` yields them in
    order: only the middle one or two are computed, with the same float operations."""
    n = len(ordered)
    right = bisect.bisect_left(ordered, center)
    left = right - 1
    prev = cur = 0.0
    for _ in range(n // 2 + 1):
        if right < n and (left < 0 or ordered[right] - center <= center - ordered[left]):
            prev, cur, right = cur, ordered[right] - center, right + 1
        else:
            prev, cur, left = cur, center - ordered[left], left - 1
    return cur if n % 2 == 1 else (prev + cur) / 2


def _median_of_sorted(data: Sequence[float]) -> float:
    """``statistics.median`` of sorted ``data`` (not empty), by its own arithmetic."""
    n = len(data)
    if n % 2 == 1:
        return data[n // 2]
    return (data[n // 2 - 1] + data[n // 2]) / 2


def summarize(hours: int, stats: Iterable[HourStats], thresholds: Thresholds = Thresholds()) -> Baseline:
    """The :class:`Baseline` of the hours of a window that have calls (``stats``, at most ``hours``)."""
    calls: list[int] = []
    costs: dict[str, list[int]] = {}
    p95s: list[float] = []
    executed = errors = denied = 0
    for h in stats:
        calls.append(h.calls)
        executed, errors, denied = executed + h.executed, errors + h.errors, denied + h.denied
        for cur, v in h.costs.items():
            costs.setdefault(cur, []).append(v)
        if sum(h.hist) >= thresholds.min_latency_samples and (p := histogram.percentile(h.hist, 0.95)) is not None:
            p95s.append(p)
    return Baseline(hours, sum(calls), executed, errors, denied, Moments.of(calls),
                    {cur: Moments.of(v) for cur, v in costs.items()}, latency_spread(p95s))


def score(baseline: Sequence[HourStats], recent: Sequence[HourStats],
          thresholds: Thresholds = Thresholds()) -> list[Score]:
    """Every metric that has enough data, for one tool. Both series are dense (one item per hour)."""
    return score_summary(summarize(len(baseline), baseline, thresholds), recent, thresholds)


def score_summary(base: Baseline, recent: Sequence[HourStats], thresholds: Thresholds = Thresholds()
                  ) -> list[Score]:
    """:func:`score` from a summarised baseline; ``recent`` is dense (one item per hour)."""
    if not base.hours or not recent:
        return []
    t = thresholds
    now = total(recent)
    out: list[Score] = []
    if base.calls >= t.min_calls and now.calls >= t.min_calls:
        out.append(_volume("call_rate", base.hourly_calls, now.calls, len(recent), t, None, base.hours))
        base_costs = base.hourly_costs
        for cur in sorted(c for c in set(base_costs) & set(now.costs) if base_costs[c].sum > 0):
            out.append(_volume("cost_rate", base.hourly_costs[cur], now.costs[cur], len(recent), t, cur,
                               base.hours))
    out += _proportion("error_rate", base.errors, base.executed, now.errors, now.executed, t)
    out += _proportion("deny_rate", base.denied, base.calls, now.denied, now.calls, t)
    out += _latency(base.latency, now, t)
    return out


def _flag(ratio: float, z: float, t: Thresholds) -> bool:
    return ratio >= t.ratio or (z >= t.z and ratio >= t.min_ratio_for_z)


def pstdev(values: Sequence[int] | Moments, n: int) -> float:
    """``statistics.pstdev`` of ``values`` padded with zeros to ``n`` items, from exact integer sums
    (given as :class:`Moments`, or of the values): the correctly rounded square root of the exact
    population variance, the same float, without a Fraction per item."""
    m = values if isinstance(values, Moments) else Moments.of(values)
    return _sqrt_of_fraction(n * m.sum_sq - m.sum * m.sum, n * n)


_SQRT_BITS = 2 * sys.float_info.mant_dig + 3


def _sqrt_of_fraction(num: int, den: int) -> float:
    """sqrt(num/den) correctly rounded (round-to-odd on enough bits, then one rounding to float),
    the method of CPython's statistics module."""
    q = (num.bit_length() - den.bit_length() - _SQRT_BITS) // 2
    if q >= 0:
        return (_isqrt_rto(num, den << 2 * q) << q) / 1
    return _isqrt_rto(num << -2 * q, den) / (1 << -q)


def _isqrt_rto(num: int, den: int) -> int:
    a = math.isqrt(num // den)
    return a | (a * a * den != num)


def _volume(metric: str, series: Moments, recent_sum: int, k: int, t: Thresholds,
            currency: str | None, hours: int) -> Score:
    """``series``: the moments of the hourly calls (or cost) over ``hours`` hours."""
    mu = float(series.sum) / hours  # math.fsum of the hourly values, then /, gave this same float
    sigma = pstdev(series, hours)
    r = recent_sum / k
    noise = math.sqrt(max(mu, 1.0)) if currency is None else t.cost_noise * mu
    se = max(sigma, noise) / math.sqrt(k)
    ratio = r / mu  # mu > 0: the caller requires baseline calls (or cost)
    z = (r - mu) / se
    return Score(metric, round(mu, 4), round(r, 4), _round(ratio), _round(z), _flag(ratio, z, t), currency)


def _proportion(metric: str, base_hits: int, base_n: int, hits: int, n: int, t: Thresholds) -> list[Score]:
    if base_n < t.min_calls or n < t.min_calls:
        return []
    p0, p = base_hits / base_n, hits / n
    floor = max(p0, t.rate_floor)
    ratio = p / floor
    z = (p - p0) / math.sqrt(floor * (1 - min(p0, 0.99)) / n)
    flagged = hits >= t.min_events and p - p0 >= t.min_rate_delta and (ratio >= t.ratio or z >= t.z)
    return [Score(metric, round(p0, 6), round(p, 6), _round(ratio), _round(z), flagged)]


def _latency(base: tuple[float, float] | None, now: HourStats, t: Thresholds) -> list[Score]:
    recent = histogram.percentile(now.hist, 0.95)
    if recent is None or sum(now.hist) < t.min_calls or base is None:
        return []
    center, mad = base
    spread = max(1.4826 * mad, t.latency_spread_floor * center)
    ratio = recent / center
    z = (recent - center) / spread
    return [Score("latency_p95", round(center, 3), round(recent, 3), _round(ratio), _round(z),
                  _flag(ratio, z, t))]


def _round(x: float) -> float:
    return round(x, 3)
