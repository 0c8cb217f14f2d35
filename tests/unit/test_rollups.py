"""Pure aggregation of a batch of entries into read-model deltas."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson

from sealtrail.core import histogram
from services.projector.rollups import ProjectedEntry, aggregate

T0 = datetime(2025, 3, 3, 9, 15, tzinfo=UTC)


def entry(idx: int, at: datetime, **header: object) -> ProjectedEntry:
    return ProjectedEntry.parse(log_id="acme", idx=idx, occurred_at=at, entry=orjson.dumps(header))


def test_tool_calls_sum_into_hourly_and_daily_rows() -> None:
    """Calls with the same key and hour (day) share a row: counts, outcome counters, latency
    histogram and cost add up, in the full hourly rollup and in the per-tool and per-agent ones."""
    common = {"type": "tool_call", "agent_id": "a", "server_id": "s", "tool_name": "t", "decision": "allow",
              "status": "ok"}
    delta = aggregate([
        entry(0, T0, **common, latency_ms=10, cost_micros=5, currency="EUR"),
        entry(1, T0 + timedelta(minutes=30), **common, latency_ms=1000, cost_micros=7, currency="EUR"),
        entry(2, T0 + timedelta(hours=1), **common),
    ])
    hour = T0.replace(minute=0)
    row = delta.hourly[(hour, "s", "t", "a", "allow", "ok", "EUR")]
    assert (row.calls, row.latency_n, row.latency_sum, row.cost_micros) == (2, 2, 1010, 12)
    assert row.hist[histogram.bucket_of(10)] == 1 and row.hist[histogram.bucket_of(1000)] == 1
    assert delta.hourly[(hour + timedelta(hours=1), "s", "t", "a", "allow", "ok", "")].latency_n == 0
    day = delta.tool_daily[(hour.replace(hour=0), "s", "t", "EUR")]
    assert (day.calls, day.ok, day.executed, day.errors, day.cost_micros) == (2, 2, 2, 0, 12)
    assert delta.agent_hourly[(hour, "a", "EUR")].hist == row.hist
    assert delta.agent_daily[(hour.replace(hour=0), "a", "")].calls == 1


def test_outcome_counters() -> None:
    """ok, errors (error, timeout), executed, denied and step-up are counted from status and decision."""
    calls = [("allow", "ok"), ("allow", "error"), ("allow", "timeout"), ("deny", "denied"), ("step_up", "pending")]
    delta = aggregate([entry(i, T0, type="tool_call", agent_id="a", server_id="s", tool_name="t", decision=d,
                             status=st) for i, (d, st) in enumerate(calls)])
    t = delta.tool_hourly[(T0.replace(minute=0), "s", "t", "")]
    assert (t.calls, t.ok, t.errors, t.executed, t.denied, t.step_up) == (5, 1, 2, 3, 1, 1)


def test_sessions_usage_and_key_uses() -> None:
    """Sessions keep the smallest agent and extreme times; usage keeps the first use by time and the
    latest hashed definition; every key id of every entry is reported for the subject index."""
    call = {"type": "tool_call", "server_id": "s", "tool_name": "t", "decision": "deny", "status": "denied",
            "session_id": "x"}
    delta = aggregate([
        entry(0, T0, **call, agent_id="b", tool_def_hash="sha256:2", key_ids=["p", "k1"]),
        entry(1, T0 - timedelta(hours=2), **call, agent_id="b", tool_def_hash="sha256:1"),
        entry(2, T0 + timedelta(hours=1), type="tool_list", server_id="s", agent_id="a", session_id="x",
              tools=[{"name": "t", "def_hash": "sha256:3"}]),
    ])
    s = delta.sessions["x"]
    assert (s.agent_id, s.events, s.calls, s.denials, s.errors) == ("a", 3, 2, 2, 0)
    assert (s.first_at, s.last_at, s.first_idx, s.last_idx) == (T0 - timedelta(hours=2), T0 + timedelta(hours=1), 0, 2)
    u = delta.usage[("b", "s", "t")]
    assert u.first == (T0 - timedelta(hours=2), "acme", 1)
    assert u.def_hash == (T0, "sha256:2")
    assert [(k.key_ids, k.idx) for k in delta.key_uses] == [(("p", "k1"), 0)]
    assert delta.snapshots[0].tools == (("t", "sha256:3"),)


def test_odd_headers_never_break_a_batch() -> None:
    """Fields of the wrong type are treated as absent, so one odd entry cannot stall projection."""
    delta = aggregate([
        entry(0, T0, type="tool_call", agent_id=5, latency_ms=-3, cost_micros="x", key_ids="nope"),
        entry(1, T0, type="rate_limit", limit_id="l", observed="many"),
        entry(2, T0, type="tool_list", server_id="s", tools=[{"name": 1}, "x", {"name": "ok", "def_hash": "h"}]),
        ProjectedEntry.parse(log_id="acme", idx=3, occurred_at=T0, entry=b"[1, 2]"),
    ])
    [(key, row)] = delta.hourly.items()
    assert key[3] == "" and row.latency_n == 0 and row.cost_micros == 0
    assert next(iter(delta.rate_limits.values())).max_observed == 0
    assert delta.snapshots[0].tools == (("ok", "h"),)
    assert delta.key_uses == []
