"""Failed console sign-ins are limited per client address and key id (token buckets), on a
``sealtrail serve`` of its own so that the other console tests' sign-ins are not refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.support.serve import create_key, start_serve


def test_failed_sign_ins_are_limited(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, new_page: Any) -> None:
    """With a burst of 3, three wrong keys are refused as wrong; the fourth attempt is refused
    before any key is checked, the page says to retry later, the API answers 429 with Retry-After
    (the right key too, from this address), the metric counts both, and the log holds no key."""
    monkeypatch.setenv("SEALTRAIL_CONSOLE_SIGNIN_BURST", "3")
    monkeypatch.setenv("SEALTRAIL_CONSOLE_SIGNIN_PER_MINUTE", "6")
    served = start_serve(tmp_path / "data")
    try:
        key = create_key(served, "investigator")
        secret = key.rsplit("_", 1)[1]
        wrong = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
        s = new_page()
        s.page.goto(served.url + "/console")
        for n in range(3):
            s.page.fill("#key", wrong)
            s.page.click("#sign-in button[type=submit]")
            expect(s.page.locator("#sign-in .error")).to_have_count(n + 1)
            assert "too many" not in s.page.inner_text("#sign-in")
        s.page.fill("#key", wrong)
        s.page.click("#sign-in button[type=submit]")
        expect(s.page.locator("#sign-in .error").last).to_contain_text("too many failed sign-ins")
        s.shot("sign-in-limited")
        r = httpx.post(served.url + "/console/session", json={"key": key})
        assert r.status_code == 429 and 1 <= int(r.headers["Retry-After"]) <= 10, r.text
        assert r.json()["detail"].startswith("too many failed sign-ins") and secret not in r.text
        metrics = httpx.get(served.url + "/metrics").text
        assert 'sealtrail_query_console_sign_ins_total{outcome="failed"} 3.0' in metrics
        assert 'sealtrail_query_console_sign_ins_total{outcome="limited"} 2.0' in metrics
    finally:
        served.stop()
    logs = served.out.read_text() + served.err.read_text()
    assert "too many failed sign-ins" in logs
    assert secret not in logs and wrong.rsplit("_", 1)[1] not in logs
