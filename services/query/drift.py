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

import math
import statistics
from collections.abc import Mapping, Sequence
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


def score(baseline: Sequence[HourStats], recent: Sequence[HourStats],
          thresholds: Thresholds = Thresholds()) -> list[Score]:
    """Every metric that has enough data, for one tool. Both series are dense (one item per hour)."""
    if not baseline or not recent:
        return []
    t = thresholds
    base, now = total(baseline), total(recent)
    out: list[Score] = []
    if base.calls >= t.min_calls and now.calls >= t.min_calls:
        out.append(_volume("call_rate", [h.calls for h in baseline], now.calls, len(recent), t, None))
        for cur in sorted(c for c in set(base.costs) & set(now.costs) if base.costs[c] > 0):
            out.append(_volume("cost_rate", [h.costs.get(cur, 0) for h in baseline], now.costs[cur],
                               len(recent), t, cur))
    out += _proportion("error_rate", base.errors, base.executed, now.errors, now.executed, t)
    out += _proportion("deny_rate", base.denied, base.calls, now.denied, now.calls, t)
    out += _latency(baseline, now, t)
    return out


def _flag(ratio: float, z: float, t: Thresholds) -> bool:
    return ratio >= t.ratio or (z >= t.z and ratio >= t.min_ratio_for_z)


def _volume(metric: str, series: Sequence[int], recent_sum: int, k: int, t: Thresholds,
            currency: str | None) -> Score:
    mu = statistics.fmean(series)
    sigma = statistics.pstdev(series)
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


def _latency(baseline: Sequence[HourStats], now: HourStats, t: Thresholds) -> list[Score]:
    hourly = [histogram.percentile(h.hist, 0.95) for h in baseline if sum(h.hist) >= t.min_latency_samples]
    p95s = [v for v in hourly if v is not None]
    recent = histogram.percentile(now.hist, 0.95)
    if recent is None or sum(now.hist) < t.min_calls or not p95s:
        return []
    # Below 1 ms the histogram cannot tell latencies apart, so 1 ms is the smallest centre.
    center = max(statistics.median(p95s), 1.0)
    mad = statistics.median(abs(v - center) for v in p95s)
    spread = max(1.4826 * mad, t.latency_spread_floor * center)
    ratio = recent / center
    z = (recent - center) / spread
    return [Score("latency_p95", round(center, 3), round(recent, 3), _round(ratio), _round(z),
                  _flag(ratio, z, t))]


def _round(x: float) -> float:
    return round(x, 3)
