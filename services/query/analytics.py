"""``/v1/analytics/*``: call figures, rate limits, drift, first uses and stale tool definitions.

Every endpoint needs the ``analytics:read`` scope and reads only the caller's tenant (the key's),
through an :class:`~services.query.ports.AnalyticsReader` whose queries run as
``sealtrail_reader`` with the tenant set, so row-level security enforces the isolation.

Wiring (in ``services/query/app.py``)::

    app.include_router(analytics.router)
    app.dependency_overrides[analytics.get_principal] = <dependency returning the caller's Principal>
    app.dependency_overrides[analytics.get_analytics_reader] = lambda: PostgresAnalyticsReader(pool=pool)

``get_principal`` and ``get_analytics_reader`` are placeholders: until they are overridden every
request fails closed (500), never unauthenticated. ``get_clock`` may be overridden in tests.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from sealtrail.errors import InvalidInputError
from sealtrail.infra.apikeys import utc_now
from sealtrail.infra.auth import Principal, Scope
from services.query import analytics_series, drift
from services.query.analytics_models import (
    AgentFigures,
    AgentsPage,
    DriftFinding,
    DriftPage,
    Figures,
    FirstUsesPage,
    RateLimitsPage,
    SeriesPage,
    SeriesPoint,
    ServerFigures,
    ServersPage,
    StaleDefinitionsPage,
    ToolFigures,
    ToolsPage,
    WindowOut,
)
from services.query.ports import AnalyticsReader, CallTotals, Grouping, SeriesOf, ToolKey
from services.query.responses import problems
from services.query.windows import HOUR, Window, floor_hour, parse_time, window_of

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
DEFAULT_BASELINE_DAYS = 7
DEFAULT_CHANGES_HOURS = 24
_NO_CALLS = drift.HourStats()


def get_principal() -> Principal:
    """Placeholder: the query app MUST override it with its authentication dependency."""
    raise RuntimeError("analytics router is not wired: override get_principal")


def get_analytics_reader() -> AnalyticsReader:
    """Placeholder: the query app MUST override it with a reader over its database pool."""
    raise RuntimeError("analytics router is not wired: override get_analytics_reader")


def get_clock() -> Callable[[], datetime]:
    return utc_now


def analytics_caller(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
    principal.require(Scope.ANALYTICS_READ)
    return principal


Caller = Annotated[Principal, Depends(analytics_caller)]
Reader = Annotated[AnalyticsReader, Depends(get_analytics_reader)]
Clock = Annotated[Callable[[], datetime], Depends(get_clock)]
From = Annotated[str | None, Query(alias="from", description="RFC 3339; rounded down to the hour")]
To = Annotated[str | None, Query(alias="to", description="RFC 3339; rounded up to the hour (default: now)")]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]

router = APIRouter(prefix="/v1/analytics", tags=["analytics"], responses=problems(400, 401, 403))


def _window(start: str | None, end: str | None, clock: Callable[[], datetime]) -> Window:
    return window_of(None if start is None else parse_time(start, "from"),
                     None if end is None else parse_time(end, "to"), now=clock())


def _out(window: Window) -> WindowOut:
    return WindowOut(start=window.start, end=window.end)


Groups = dict[tuple[str, ...], CallTotals]


def _ranked(groups: Groups, limit: int) -> list[tuple[tuple[str, ...], CallTotals]]:
    return sorted(groups.items(), key=lambda kv: (-kv[1].calls, kv[0]))[:limit]


@router.get("/tools", response_model=ToolsPage)
async def tools(caller: Caller, reader: Reader, clock: Clock, start: From = None, end: To = None,
                limit: Limit = DEFAULT_LIMIT) -> ToolsPage:
    """Per (server, tool): calls, success and error rates, latency percentiles, cost, deny and
    step-up rates."""
    window = _window(start, end, clock)
    groups = await reader.call_totals(caller.tenant_id, Grouping.TOOL, window)
    return ToolsPage(window=_out(window), tools=[
        ToolFigures(server_id=k[0], tool_name=k[1], **Figures.values(t)) for k, t in _ranked(groups, limit)])


@router.get("/agents", response_model=AgentsPage)
async def agents(caller: Caller, reader: Reader, clock: Clock, start: From = None, end: To = None,
                 limit: Limit = DEFAULT_LIMIT) -> AgentsPage:
    """Per agent: the same figures as ``/tools``."""
    window = _window(start, end, clock)
    groups = await reader.call_totals(caller.tenant_id, Grouping.AGENT, window)
    return AgentsPage(window=_out(window), agents=[
        AgentFigures(agent_id=k[0], **Figures.values(t)) for k, t in _ranked(groups, limit)])


@router.get("/servers", response_model=ServersPage)
async def servers(caller: Caller, reader: Reader, clock: Clock, start: From = None, end: To = None,
                  limit: Limit = DEFAULT_LIMIT) -> ServersPage:
    """Per tool server: the same figures as ``/tools``."""
    window = _window(start, end, clock)
    groups = await reader.call_totals(caller.tenant_id, Grouping.SERVER, window)
    return ServersPage(window=_out(window), servers=[
        ServerFigures(server_id=k[0], **Figures.values(t)) for k, t in _ranked(groups, limit)])


Name = Annotated[str | None, Query(min_length=1, max_length=256)]


@router.get("/series", response_model=SeriesPage)
async def series(caller: Caller, reader: Reader, clock: Clock, start: From = None, end: To = None,
                 agent_id: Name = None, server_id: Name = None, tool_name: Name = None) -> SeriesPage:
    """The figures of ``/tools`` per time bucket over the window, of every call or of one agent, or
    of one server and/or tool name: hourly up to 200 hours, then in buckets of 2, 3, 6, 12, 24, 48,
    96 or 168 hours, so a series has at most 200 points (30 days: 6 h buckets)."""
    if agent_id is not None and (server_id is not None or tool_name is not None):
        raise InvalidInputError("a series is of an agent, or of a server and/or tool, not both",
                                pointer="query:agent_id")
    of = SeriesOf(agent_id=agent_id, server_id=server_id, tool_name=tool_name)
    p = analytics_series.plan(_window(start, end, clock))
    by_bucket = await reader.series(caller.tenant_id, p.window, of, daily=p.daily)
    return SeriesPage(window=_out(p.window), bucket_hours=int(p.bucket / HOUR), agent_id=agent_id,
                      server_id=server_id, tool_name=tool_name, points=[
                          SeriesPoint(start=t, **Figures.values(totals))
                          for t, totals in analytics_series.fold(p, by_bucket)])


@router.get("/rate-limits", response_model=RateLimitsPage)
async def rate_limits(caller: Caller, reader: Reader, clock: Clock, start: From = None, end: To = None,
                      limit: Limit = DEFAULT_LIMIT) -> RateLimitsPage:
    """Rate-limit events per limit and scope, most frequent first."""
    window = _window(start, end, clock)
    rows = await reader.rate_limits(caller.tenant_id, window, limit)
    return RateLimitsPage(window=_out(window), limits=list(rows))


@router.get("/first-use", response_model=FirstUsesPage)
async def first_use(caller: Caller, reader: Reader, clock: Clock, start: From = None, end: To = None,
                    agent_id: str | None = None, limit: Limit = DEFAULT_LIMIT) -> FirstUsesPage:
    """Agents that used a tool for the first time within the window, earliest first."""
    window = _window(start, end, clock)
    rows = await reader.first_uses(caller.tenant_id, window, agent_id, limit)
    return FirstUsesPage(window=_out(window), first_uses=list(rows))


@router.get("/definition-changes", response_model=StaleDefinitionsPage)
async def definition_changes(caller: Caller, reader: Reader, agent_id: str | None = None,
                             limit: Limit = DEFAULT_LIMIT) -> StaleDefinitionsPage:
    """Tools whose definition changed (or that were removed) since an agent last used them."""
    rows = await reader.stale_definitions(caller.tenant_id, agent_id, limit)
    return StaleDefinitionsPage(stale=list(rows))


def _series(by_hour: dict[datetime, CallTotals], window: Window) -> list[drift.HourStats]:
    """One item per hour of ``window``; hours without calls are zeros."""
    return [by_hour[h].hour_stats() if h in by_hour else _NO_CALLS for h in window.hour_starts()]


def _findings(bases: dict[ToolKey, drift.Baseline], hours: dict[ToolKey, dict[datetime, CallTotals]],
              baseline: Window, recent: Window) -> list[DriftFinding]:
    empty = drift.Baseline(baseline.hours)
    out = [DriftFinding(server_id=server_id, tool_name=tool_name, metric=s.metric, currency=s.currency,
                        baseline=s.baseline, recent=s.recent, ratio=s.ratio, z=s.z)
           for server_id, tool_name in sorted(set(bases) | set(hours))
           for s in drift.score_summary(bases.get((server_id, tool_name), empty),
                                        _series(hours.get((server_id, tool_name), {}), recent)) if s.flagged]
    return sorted(out, key=lambda f: (-f.ratio, f.server_id, f.tool_name, f.metric))


@router.get("/drift", response_model=DriftPage)
async def drift_report(
    caller: Caller, reader: Reader, clock: Clock, end: To = None,
    recent_hours: Annotated[int, Query(ge=1, le=168)] = 1,
    baseline_days: Annotated[int, Query(ge=1, le=28)] = DEFAULT_BASELINE_DAYS,
    changes_hours: Annotated[int, Query(ge=1, le=24 * 28)] = DEFAULT_CHANGES_HOURS,
    limit: Limit = DEFAULT_LIMIT,
) -> DriftPage:
    """Tools whose call rate, error rate, latency p95, cost or deny rate departs from their own
    baseline, and tool definitions that changed lately (method: docs/analytics.md)."""
    stop = floor_hour(parse_time(end, "to") if end is not None else clock())
    recent = Window(stop - recent_hours * HOUR, stop)
    baseline = Window(recent.start - timedelta(days=baseline_days), recent.start)
    bases = await reader.drift_baseline(caller.tenant_id, baseline, drift.Thresholds().min_latency_samples)
    hours = await reader.tool_hours(caller.tenant_id, recent)
    findings = _findings(bases, hours, baseline, recent)
    lately = Window(stop - changes_hours * HOUR, stop)
    changes = await reader.definition_changes(caller.tenant_id, lately, limit)
    return DriftPage(recent=_out(recent), baseline=_out(baseline), tools_evaluated=len(set(bases) | set(hours)),
                     findings=findings[:limit],
                     definition_changes=list(changes))
