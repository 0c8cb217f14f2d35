"""The investigator's console in Chromium: search, session timeline, call detail with reveal and
the in-browser check, analytics."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from tests.e2e.console.conftest import Console


def test_search_filters_and_pages_link_every_value(new_page: Any, console: Console) -> None:
    s = new_page().sign_in("investigator")
    nav = [a.inner_text() for a in s.page.locator("#nav a").all()]
    assert nav == ["Calls", "Analytics", "Checkpoints", "Keys", "Verify"]
    page = s.go("calls?limit=20")
    assert page.locator("tbody tr").count() == 20
    s.shot("calls")
    page.locator("a", has_text="Next page").click()
    s.settled()
    assert "cursor=" in page.url and page.locator("tbody tr").count() == 20
    # a value links to the list filtered by it
    page.locator("tbody tr").first.locator("td").nth(5).locator("a").click()
    s.settled()
    tool = page.locator("select[name=tier]").evaluate("e => e.form.tool.value")
    assert tool and "tool=" in page.url
    tools = {t.inner_text() for t in page.locator("tbody tr td:nth-child(6)").all()}
    assert tools == {tool}
    # the form's filters go to /v1/calls
    page.select_option("select[name=decision]", "deny")
    page.click("form.filters button")
    s.settled()
    assert "decision=deny" in page.url
    assert {d.inner_text() for d in page.locator("tbody tr td:nth-child(8)").all()} <= {"deny"}


def test_session_timeline_in_order_with_offsets(new_page: Any, console: Console) -> None:
    s = new_page().sign_in("investigator")
    page = s.go(f"session?id={console.session_id}")
    rows = page.locator("tbody tr")
    assert rows.count() >= 4
    kinds = [r.get_attribute("class") for r in rows.all()]
    assert "kind-approval" in kinds and "kind-tool_call" in kinds
    approval = page.locator("tr.kind-approval td:nth-child(11)").first.inner_text()
    assert approval.isdigit(), "an approval shows how long it waited"
    offsets = [int(t.inner_text().strip("+ ms")) for t in page.locator("tbody tr td:first-child").all()]
    assert offsets == sorted(offsets) and offsets[0] == 0
    s.shot("session")


def test_call_detail_verifies_in_the_browser_and_reveal_writes_an_access_event(
        new_page: Any, console: Console) -> None:
    s = new_page().sign_in("investigator")
    s.pin(console.checkpoint_vkey)
    page = s.go(f"call?id={console.reveal_id}")
    verdict = page.locator("#verdict")
    expect(verdict).to_have_attribute("data-verified", "yes", timeout=30_000)
    assert "tree size" in verdict.inner_text() and "root" in verdict.inner_text()
    page.click("#reveal")
    page.fill("input[name=purpose]", "incident.review")
    page.click("form.reveal button")
    access = page.locator("#revealed a")
    expect(access).to_be_visible(timeout=30_000)
    access_id = access.inner_text()
    assert page.locator("pre.payload").inner_text().startswith("{")
    s.shot("call")
    with console.api("investigator") as api:
        found = api.get("/v1/calls", params={"type": "access", "limit": 1000}).json()["calls"]
        assert any(c["header"]["event_id"] == access_id and console.reveal_id in str(c["header"]) for c in found)


def test_a_tampered_read_model_shows_not_verified(new_page: Any, console: Console) -> None:
    s = new_page().sign_in("investigator")
    s.pin(console.checkpoint_vkey)
    page = s.go(f"call?id={console.tamper_id}")
    verdict = page.locator("#verdict")
    expect(verdict).to_have_attribute("data-verified", "no", timeout=30_000)
    assert "tool_name" in verdict.inner_text()


def test_a_leaf_hash_that_disagrees_shows_not_verified(new_page: Any, console: Console) -> None:
    s = new_page().sign_in("investigator")
    s.pin(console.checkpoint_vkey)

    def altered(route: Any) -> None:
        r = route.fetch()
        body = r.json()
        body["leaf_hash"] = "A" * 43 + "="
        route.fulfill(response=r, json=body)

    s.page.route(f"**/v1/calls/{console.reveal_id}", altered)
    page = s.go(f"call?id={console.reveal_id}")
    verdict = page.locator("#verdict")
    expect(verdict).to_have_attribute("data-verified", "no", timeout=30_000)
    assert "not the entry in the signed log" in verdict.inner_text()


def test_analytics_tables_chart_and_drift(new_page: Any, console: Console) -> None:
    s = new_page().sign_in("investigator")
    page = s.go("analytics?hours=24")
    assert page.locator("tr.tool-row").count() >= 8
    assert page.locator("svg.chart rect.bar").count() == 24
    assert "Drift" in page.inner_text("#view")
    s.shot("analytics")
    page.select_option("#series-tool", "files/read_file")
    s.settled()
    assert "tool=files%2Fread_file" in page.url
    charts = page.locator("svg.chart")
    assert charts.count() == 2
    heights = [float(r.get_attribute("height") or 0) for r in charts.nth(0).locator("rect.bar").all()]
    assert max(heights) > 0 and heights.index(max(heights)) >= 20  # the demo's spike is in the last hours


def test_analytics_windows_beyond_a_day_in_one_series_request(new_page: Any, console: Console) -> None:
    """7 days are charted hour by hour (168 bars), 30 days in 6-hour bars (120), a custom window
    from the form; each view asks for its chart once (/v1/analytics/series), six requests in all."""
    s = new_page().sign_in("investigator")
    asked: list[str] = []
    s.page.on("request", lambda r: asked.append(r.url) if "/v1/analytics/" in r.url else None)
    page = s.go("analytics?hours=168")
    assert page.locator("svg.chart").first.locator("rect.bar").count() == 168
    assert page.get_attribute("#series-title", "data-bucket-hours") == "1"
    assert len(asked) == 6 and sum("/v1/analytics/series?" in u for u in asked) == 1, asked
    page = s.go("analytics?hours=720")
    assert page.locator("svg.chart").first.locator("rect.bar").count() == 120
    assert page.get_attribute("#series-title", "data-bucket-hours") == "6"
    assert page.inner_text("#series-title") == "Calls and errors per 6 h"
    s.shot("analytics-30d")
    page.fill("#window-from", "2026-01-01T00:00")
    page.fill("#window-to", "2026-01-03T00:00")
    page.click("#custom-window button")
    s.settled()
    assert "from=2026-01-01T00%3A00%3A00.000Z" in page.url
    assert page.locator("svg.chart").first.locator("rect.bar").count() == 48
    assert "Tools" in page.inner_text("#view")


def test_call_detail_says_whether_the_tool_definition_changed_since(new_page: Any, console: Console) -> None:
    with console.api("investigator") as api:
        stale = api.get("/v1/analytics/definition-changes", params={"limit": 1000}).json()["stale"]
        assert stale, "the demo changes a tool's definition"
        d = stale[0]
        calls = api.get("/v1/calls", params={"agent": d["agent_id"], "server": d["server_id"],
                                             "tool": d["tool_name"], "limit": 1000}).json()["calls"]
    changed = next(c for c in calls if c["header"].get("tool_def_hash") == d["used_hash"])
    s = new_page().sign_in("investigator")
    page = s.go(f"call?id={changed['header']['event_id']}")
    assert page.get_attribute("#definition", "data-changed") == "yes"
    assert d["changed_at"][:19] in page.inner_text("#definition")
    page = s.go(f"call?id={console.reveal_id}")
    assert page.get_attribute("#definition", "data-changed") == "no"
