"""Response bodies of the analytics API (see docs/analytics.md for what each figure means)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from sealtrail.core import histogram
from services.query.ports import CallTotals, DefinitionChange, FirstUse, RateLimitTotals, StaleDefinition


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True)


class WindowOut(_Frozen):
    start: datetime = Field(serialization_alias="from")
    end: datetime = Field(serialization_alias="to")


class Latency(_Frozen):
    samples: int
    mean: float | None
    p50: float | None
    p95: float | None
    p99: float | None


class Cost(_Frozen):
    currency: str
    micros: int


class Figures(_Frozen):
    calls: int
    ok: int
    errors: int
    executed: int
    success_rate: float | None = Field(description="ok / executed (ok, error, timeout); null without any")
    error_rate: float | None = Field(description="errors (error, timeout) / executed")
    deny_rate: float | None = Field(description="decision deny / calls")
    step_up_rate: float | None = Field(description="decision step_up / calls")
    latency_ms: Latency
    cost: list[Cost]

    @staticmethod
    def values(t: CallTotals) -> dict[str, object]:
        def rate(n: int, d: int) -> float | None:
            return round(n / d, 6) if d else None

        latency = Latency(
            samples=t.latency_n, mean=round(t.latency_sum / t.latency_n, 3) if t.latency_n else None,
            p50=histogram.percentile(t.hist, 0.50), p95=histogram.percentile(t.hist, 0.95),
            p99=histogram.percentile(t.hist, 0.99))
        return {
            "calls": t.calls, "ok": t.ok, "errors": t.errors, "executed": t.executed,
            "success_rate": rate(t.ok, t.executed), "error_rate": rate(t.errors, t.executed),
            "deny_rate": rate(t.denied, t.calls), "step_up_rate": rate(t.step_up, t.calls),
            "latency_ms": latency, "cost": [Cost(currency=c, micros=m) for c, m in sorted(t.costs.items())],
        }


class ToolFigures(Figures):
    server_id: str
    tool_name: str


class AgentFigures(Figures):
    agent_id: str


class ServerFigures(Figures):
    server_id: str


class ToolsPage(_Frozen):
    window: WindowOut
    tools: list[ToolFigures]


class AgentsPage(_Frozen):
    window: WindowOut
    agents: list[AgentFigures]


class ServersPage(_Frozen):
    window: WindowOut
    servers: list[ServerFigures]


class RateLimitsPage(_Frozen):
    window: WindowOut
    limits: list[RateLimitTotals]


class FirstUsesPage(_Frozen):
    window: WindowOut
    first_uses: list[FirstUse]


class StaleDefinitionsPage(_Frozen):
    stale: list[StaleDefinition]


class DriftFinding(_Frozen):
    server_id: str
    tool_name: str
    metric: str
    currency: str | None = None
    baseline: float
    recent: float
    ratio: float
    z: float


class DriftPage(_Frozen):
    recent: WindowOut
    baseline: WindowOut
    tools_evaluated: int
    findings: list[DriftFinding]
    definition_changes: list[DefinitionChange]


class SeriesPoint(Figures):
    start: datetime = Field(description="the start of the point's bucket (UTC)")


class SeriesPage(_Frozen):
    window: WindowOut = Field(description="the window charted: the one asked for, widened to whole UTC days "
                                          "when buckets are a day or longer")
    bucket_hours: int = Field(description="hours per point (1, 2, 3, 6, 12, 24, 48, 96 or 168)")
    agent_id: str | None
    server_id: str | None
    tool_name: str | None
    points: list[SeriesPoint] = Field(description="one per bucket, oldest first, zeros where no calls")
