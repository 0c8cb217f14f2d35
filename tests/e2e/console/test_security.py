"""The console's defences in Chromium and over HTTP: hostile log content stays text, the CSP and
the other headers on every page, CSRF, session expiry, refused keys and role limits."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.console.conftest import HOSTILE, Console
from tests.support.serve import cli, create_key, start_serve

PAGES = ["/console", "/console/static/app.js", "/console/static/console.css", "/console/static/nope.js",
         "/console/session"]


def assert_inert(s: Any) -> None:
    page = s.page
    assert page.evaluate("window.__pwned") is None
    assert page.locator("img").count() == 0
    assert page.locator("script").count() == 1  # app.js alone
    hrefs = page.eval_on_selector_all("a[href]", "as => as.map(a => a.getAttribute('href'))")
    assert all(h.startswith("#/") or h.startswith("blob:") for h in hrefs), hrefs


def test_hostile_tool_names_arguments_and_results_render_as_text(new_page: Any, console: Console) -> None:
    s = new_page().sign_in("investigator")
    page = s.go("calls?decision=deny&limit=200")
    text = page.inner_text("#view")
    for value in HOSTILE.values():
        assert f"tool{value}".replace("\u202e", "[U+202E]") in text
    assert "invoiceexe.jpg" not in text  # the override is shown, not obeyed
    assert_inert(s)
    s.shot("hostile-search")
    for name, event_id in console.hostile_ids.items():
        page = s.go(f"call?id={event_id}")
        assert f"tool{HOSTILE[name]}".replace("\u202e", "[U+202E]") in page.inner_text("#view")
        page.click("#reveal")
        page.fill("input[name=purpose]", "security.review")
        page.click("form.reveal button")
        payload = page.locator("pre.payload")
        payload.wait_for(timeout=30_000)
        shown = HOSTILE[name].replace('"', '\\"').replace("\u202e", "[U+202E]")
        assert shown in payload.inner_text(), payload.inner_text()
        assert_inert(s)
    page = s.go("session?id=hostile-img")
    assert_inert(s)
    page = s.go("analytics?hours=1")
    assert_inert(s)
    assert s.violations == [], s.violations


def test_every_console_answer_carries_the_security_headers(console: Console) -> None:
    for path in PAGES:
        r = httpx.get(console.url + path)
        csp = r.headers.get("content-security-policy", "")
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp, path
        assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp, path
        assert r.headers.get("x-content-type-options") == "nosniff", path
    index = httpx.get(console.url + "/console").text
    assert "<script>" not in index and "http" not in index.replace('lang="en"', "")


def test_sign_in_sets_a_strict_cookie_and_never_echoes_the_key(console: Console) -> None:
    r = httpx.post(console.url + "/console/session", json={"key": console.tokens["investigator"]})
    assert r.status_code == 200
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
    assert console.tokens["investigator"] not in r.text
    assert "secure" not in cookie  # plain HTTP here; Secure is set when served over TLS


@pytest.mark.parametrize("role", ["gateway", "operator"])
def test_gateway_and_operator_keys_cannot_sign_in(console: Console, role: str) -> None:
    r = httpx.post(console.url + "/console/session", json={"key": console.tokens[role]})
    assert r.status_code == 403 and "cannot sign in" in r.json()["detail"]
    assert "set-cookie" not in r.headers


def test_a_cross_site_post_without_the_csrf_token_is_refused(new_page: Any, console: Console) -> None:
    s = new_page().sign_in("dpo")
    # what a forged request can send: the cookie, not the token
    forged = "JSON.stringify({subject: 'user:alice@example.com', reason: 'forged'})"
    status = s.page.evaluate(f"""fetch('/v1/subjects/hold', {{method: 'PUT',
        headers: {{'Content-Type': 'application/json'}}, body: {forged}}}).then(r => r.status)""")
    assert status == 403
    # from another site, a form posting to the API: the SameSite=Strict cookie is not sent
    s.page.route("http://evil.test/", lambda route: route.fulfill(content_type="text/html", body="<p>evil</p>"))
    s.page.goto("http://evil.test/")
    with s.page.expect_response(f"{console.url}/v1/subjects/erase") as answer:
        s.page.evaluate("""url => { const f = document.createElement('form'); f.method = 'POST'; f.action = url;
            f.enctype = 'text/plain'; const i = document.createElement('input');
            i.name = '{"subject":"user:alice@example.com","request_ref":"forged","legal_basis":"gdpr.art17.1a","x":"';
            i.value = '"}'; f.append(i); document.body.append(f); f.submit(); }""", f"{console.url}/v1/subjects/erase")
    assert answer.value.status == 401
    s.page.wait_for_url(f"{console.url}/v1/subjects/erase")
    s.page.goto(console.url + "/console")
    s.page.wait_for_selector("#role")  # still signed in: the cookie exists, it was only withheld
    status = s.page.evaluate("fetch('/console/session', {method: 'DELETE'}).then(r => r.status)")
    assert status == 403
    s2 = new_page().sign_in("investigator")  # a reveal writes an access event: it needs the token too
    status = s2.page.evaluate(f"fetch('/v1/calls/{console.reveal_id}?purpose=forged').then(r => r.status)")
    assert status == 403
    r = httpx.post(console.url + "/console/session", json={"key": console.tokens["dpo"]},
                   headers={"Origin": "https://evil.example"})
    assert r.status_code == 403
    with console.api("dpo") as api:
        history = api.get("/v1/subjects/erasures", params={"subject": "user:alice@example.com"}).json()
        assert history["hold"] is None and history["erasures"] == []


def test_role_limits_hold_on_the_server(console: Console) -> None:
    def session(role: str) -> httpx.Client:
        c = httpx.Client(base_url=console.url)
        csrf = c.post("/console/session", json={"key": console.tokens[role]}).json()["csrf"]
        c.headers["X-CSRF-Token"] = csrf
        return c

    inv, dpo, aud = session("investigator"), session("dpo"), session("auditor")
    try:
        body = {"subject": "user:alice@example.com", "request_ref": "r-1", "legal_basis": "gdpr.art17.1a"}
        assert inv.post("/v1/subjects/erase", json=body).status_code == 403
        hold = {"subject": "user:alice@example.com", "reason": "x"}
        assert inv.put("/v1/subjects/hold", json=hold).status_code == 403
        assert dpo.get(f"/v1/calls/{console.reveal_id}", params={"purpose": "look"}).status_code == 403
        assert aud.get(f"/v1/calls/{console.reveal_id}").status_code == 403
        assert aud.post("/v1/subjects/erase", json=body).status_code == 403
        assert aud.get(f"/v1/events/{console.reveal_id}/tlog-proof").status_code == 200
        assert inv.delete("/console/session").status_code == 204
        assert inv.get("/v1/calls").status_code == 401
    finally:
        for c in (inv, dpo, aud):
            c.close()


def test_an_expired_session_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, new_page: Any) -> None:
    monkeypatch.setenv("SEALTRAIL_CONSOLE_IDLE_S", "4")
    served = start_serve(tmp_path / "data")
    try:
        key = create_key(served, "investigator")
        s = new_page()
        s.page.goto(served.url + "/console")
        s.page.fill("#key", key)
        s.page.click("#sign-in button[type=submit]")
        s.page.wait_for_selector("#role")
        assert s.page.evaluate("fetch('/v1/calls').then(r => r.status)") == 200
        s.page.wait_for_timeout(5000)
        assert s.page.evaluate("fetch('/v1/calls').then(r => r.status)") == 401
        s.page.goto(served.url + "/console#/calls")
        s.page.wait_for_selector("#sign-in")
        s.shot("sign-in")
    finally:
        served.stop()


def test_revoking_the_key_ends_its_console_sessions(console: Console) -> None:
    key = create_key(console.served, "investigator")
    with httpx.Client(base_url=console.url) as c:
        c.post("/console/session", json={"key": key}).raise_for_status()
        assert c.get("/v1/calls", params={"limit": 1}).status_code == 200
        key_id = key.removeprefix("st_").split("_", 1)[0]
        done = cli("admin", "key", "revoke", "--data-dir", str(console.served.data_dir), key_id)
        assert done.returncode == 0, done.stderr
        deadline = time.monotonic() + 30  # the key cache holds a row for 5 s
        while c.get("/v1/calls", params={"limit": 1}).status_code == 200:
            assert time.monotonic() < deadline, "the session outlived its revoked key"
            time.sleep(0.5)
        r = c.get("/v1/calls", params={"limit": 1})
        assert r.status_code == 401 and "revoked" in r.json()["detail"]


def test_the_cookie_is_secure_when_served_over_tls(console: Console) -> None:
    # behind a TLS-terminating proxy on this host (uvicorn trusts X-Forwarded-Proto from 127.0.0.1)
    r = httpx.post(console.url + "/console/session", json={"key": console.tokens["auditor"]},
                   headers={"X-Forwarded-Proto": "https", "Origin": console.url.replace("http:", "https:")})
    assert r.status_code == 200, r.text
    assert "secure" in r.headers["set-cookie"].lower()
