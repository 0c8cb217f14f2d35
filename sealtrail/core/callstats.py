"""The outcome counters and latency histogram that every rollup of tool calls keeps. Pure code.

The projector adds calls into them (one key of one batch); the query service sums stored rollup
rows into them (one group over a window). Both read models and figures use these names, which are
also the rollup tables' column names.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sealtrail.core import histogram


@dataclass(slots=True)
class CallCounters:
    """Sums over tool calls: outcomes, decisions, and latency (sample count, sum, histogram)."""

    calls: int = 0
    ok: int = 0
    errors: int = 0
    executed: int = 0
    denied: int = 0
    step_up: int = 0
    latency_n: int = 0
    latency_sum: int = 0
    hist: list[int] = field(default_factory=histogram.empty)
