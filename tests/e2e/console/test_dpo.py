"""The DPO's console in Chromium: find a subject, export, legal hold, erase with confirmation,
erasure history with the receipt's signature checked; the log stays verifiable afterwards."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from tests.e2e.console.conftest import ERASE_SUBJECT, Console
from tests.support.serve import cli


def test_dpo_finds_exports_holds_and_erases(new_page: Any, console: Console) -> None:
    s = new_page().sign_in("dpo")
    assert [a.inner_text() for a in s.page.locator("#nav a").all()] == ["Calls", "Subjects"]
    page = s.go(f"subjects?subject={ERASE_SUBJECT}")
    summary = page.inner_text("#subject")
    assert "entries\n3" in summary and "type tool_call\n3" in summary
    assert ERASE_SUBJECT not in page.inner_text("#dpo-actions")
    with page.expect_download() as download:
        page.click("form.export button")
    exported = json.loads(Path(download.value.path()).read_text())
    assert sum(len(p["entries"]) for p in exported["pages"]) == 3
    assert all(ERASE_SUBJECT in json.dumps(e["payload"]) for p in exported["pages"] for e in p["entries"])
    # legal hold: set, then release; erasure is refused while it holds
    page.fill("form.hold input[name=reason]", "litigation")
    page.click("form.hold button")
    s.settled()
    expect(page.locator("#release-hold")).to_be_visible()
    s.shot("subject-hold")
    page.fill("form.erase input[name=request_ref]", "DSR-2026-0041")
    page.click("form.erase button")
    page.click("#confirm-erase")
    expect(page.locator("#dpo-actions .error")).to_contain_text("hold")
    # a release without a reason is refused, and the page says why; with one it is recorded
    page.click("#release-hold")
    expect(page.locator("#dpo-actions .error").last).to_contain_text("releasing a legal hold needs a reason")
    expect(page.locator("#release-hold")).to_be_visible()
    page.fill("#release-reason", "litigation.closed")
    page.click("#release-hold")
    s.settled()
    expect(page.locator("form.hold")).to_be_visible()
    released = page.locator("#released-holds tbody tr").first
    expect(released.locator("td.release-reason")).to_have_text("litigation.closed")
    expect(released).to_contain_text("litigation")
    # erase, after a confirmation naming the subject and the request
    page.fill("form.erase input[name=request_ref]", "DSR-2026-0042")
    page.click("form.erase button")
    confirm = page.locator(".confirm")
    assert ERASE_SUBJECT in confirm.inner_text() and "DSR-2026-0042" in confirm.inner_text()
    page.click("#confirm-erase")
    s.settled()
    row = page.locator("#erasures tbody tr").first
    expect(row).to_contain_text("DSR-2026-0042", timeout=30_000)
    expect(row.locator("td.receipt")).to_have_text("signature verified")
    s.shot("subject-erased")
    # the DPO cannot reveal: no button, and the server refuses; the erased payloads are unreadable
    page = s.go(f"call?id={console.erase_ids[0]}")
    assert "lookup_customer" in page.inner_text("#view")
    assert page.locator("#reveal").count() == 0 and page.locator("#verdict").count() == 0
    status = page.evaluate(f"fetch('/v1/calls/{console.erase_ids[0]}?purpose=check').then(r => r.status)")
    assert status == 403
    with console.api("investigator") as api:
        revealed = api.get(f"/v1/calls/{console.erase_ids[0]}", params={"purpose": "check"}).json()
        assert revealed["payload"] is None and revealed["payload_state"] != "revealed"
    done = cli("verify", "--url", console.url, "--log", "default",
               env={"SEALTRAIL_TOKEN": console.tokens["auditor"]}, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
