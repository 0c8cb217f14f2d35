"""The demo's analytics table covers the week its title names, not the API's default 24 hours."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import httpx
from rich.console import Console

from sealtrail.cli import demo_report


def test_analytics_asks_for_the_past_seven_days() -> None:
    """Both analytics requests carry from = now - 7 days; the table's title says 7 days."""
    seen: list[httpx.Request] = []

    def api(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/v1/analytics/tools":
            return httpx.Response(200, json={"tools": [{
                "server_id": "files", "tool_name": "read_file", "calls": 430, "success_rate": 1.0,
                "error_rate": 0.0, "deny_rate": 0.0, "step_up_rate": 0.0, "latency_ms": {"p95": 12.0}}]})
        return httpx.Response(200, json={"limits": []})

    now = datetime(2026, 12, 3, 20, 30, tzinfo=UTC)
    out = io.StringIO()
    with httpx.Client(base_url="http://q", transport=httpx.MockTransport(api)) as http:
        demo_report.analytics(Console(file=out, width=120), http, "token", now=now)
    assert [r.url.path for r in seen] == ["/v1/analytics/tools", "/v1/analytics/rate-limits"]
    for request in seen:
        assert datetime.fromisoformat(request.url.params["from"]) == now - timedelta(days=7)
    assert "past 7 days" in out.getvalue() and "430" in out.getvalue()
