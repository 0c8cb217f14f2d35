"""One ``sealtrail serve`` loaded with the demo's traffic and hostile tool calls, one Chromium
for every console test, and a fresh browser context per page."""

from __future__ import annotations

import asyncio
import base64
import os
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from sealtrail.cli.demo_traffic import scenario
from sealtrail.sdk import events
from tests.support.browser import chromium
from tests.support.serve import Served, create_key, send_events, start_serve, wait_for_checkpoint

# Screenshots go to SEALTRAIL_CONSOLE_SHOTS (docs/console to refresh the documentation's), else to a
# directory of the temp dir, so a test run leaves the work tree as it found it.
SHOTS = Path(os.environ.get("SEALTRAIL_CONSOLE_SHOTS") or Path(tempfile.gettempdir()) / "sealtrail-console-shots")
PWN = "window.__pwned=1"
ERASE_SUBJECT = "user:erin@example.com"
HOSTILE = {
    "script": f"<script>{PWN}</script>",
    "img": f'"><img src=x onerror="{PWN}">',
    "js_url": f"javascript:{PWN}",
    "rtl": "invoice\u202egpj.exe",
}


@dataclass
class Console:
    served: Served
    tokens: dict[str, str]
    hostile_ids: dict[str, str]
    reveal_id: str
    session_id: str
    erase_ids: list[str]
    checkpoint_vkey: str
    tamper_id: str

    @property
    def url(self) -> str:
        return self.served.url

    def api(self, role: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.tokens[role]}"})


def _hostile_calls() -> dict[str, dict[str, Any]]:
    out = {}
    for name, text in HOSTILE.items():
        out[name] = events.tool_call(
            agent_id=f"agent {text}", server_id=f"srv{text}", tool_name=f"tool{text}", tool_tier="read",
            decision="deny", status="denied", session_id=f"hostile-{name}", error_type=text,
            payload={"arguments": {"q": text, "url": f"javascript:{PWN}"}, "result": {"html": text}},
            subjects=["user:mallory@example.com"])
    return out


def _wait_projected(served: Served, token: str, event_id: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=served.url, headers={"Authorization": f"Bearer {token}"}) as c:
        while time.monotonic() < deadline:
            if c.get(f"/v1/calls/{event_id}").status_code == 200:
                return
            time.sleep(0.2)
    raise TimeoutError(f"event {event_id} was not projected within {timeout} s")


@pytest.fixture(scope="package")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    root = tmp_path_factory.mktemp("console")
    served = start_serve(root / "data")
    try:
        tokens = dict(served.tokens)
        for role in ("investigator", "dpo", "auditor"):
            tokens[role] = create_key(served, role)
        demo = scenario(datetime.now(UTC))
        hostile = _hostile_calls()
        tamper = events.tool_call(agent_id="support-bot", server_id="crm", tool_name="lookup_customer",
                                  tool_tier="read", decision="allow", status="ok", session_id="sess-tamper",
                                  latency_ms=12)
        erin = [events.tool_call(agent_id="support-bot", server_id="crm", tool_name="lookup_customer",
                                 tool_tier="read", decision="allow", status="ok", session_id="sess-erin",
                                 payload={"arguments": {"email": ERASE_SUBJECT, "n": i}},
                                 subjects=[ERASE_SUBJECT]) for i in range(3)]
        batch = [*demo.events, *hostile.values(), *erin, tamper]
        ids = asyncio.run(send_events(served.url, tokens["gateway"], batch))
        assert len(ids) == len(batch), "every event is acknowledged"
        wait_for_checkpoint(served.url, tokens["auditor"], "default", len(batch))
        for e in [*hostile.values(), *erin, tamper]:
            _wait_projected(served, tokens["investigator"], e["event_id"])
        keys = httpx.get(served.url + "/v1/keys", headers={"Authorization": f"Bearer {tokens['auditor']}"}).json()
        vkey = next(k["vkey"] for k in keys["keys"] if k["purpose"] == "checkpoint")
        # The read model of one call is changed behind the server's back: its signed bytes are not.
        with sqlite3.connect(served.data_dir / "sealtrail.db") as db:
            db.execute("UPDATE entries SET tool_name = 'renamed_tool' WHERE event_id = ?", (tamper["event_id"],))
        yield Console(served, tokens, {k: v["event_id"] for k, v in hostile.items()}, demo.reveal_event_id,
                      demo.session, [e["event_id"] for e in erin], vkey, tamper["event_id"])
    finally:
        served.stop()


@pytest.fixture(scope="package")
def playwright(console: Console) -> Iterator[Playwright]:
    """Package-scoped, and after ``console``: the sync API runs an event loop in this thread while
    it is open, so nothing here or in later test modules may need ``asyncio.run`` meanwhile."""
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    b = playwright.chromium.launch(executable_path=str(chromium()), headless=True)
    yield b
    b.close()


class SignedIn:
    """A page of a fresh browser context (own cookies and local storage)."""

    def __init__(self, page: Page, console: Console) -> None:
        self.page, self.console = page, console
        self.violations: list[str] = []
        page.on("console", lambda m: self.violations.append(m.text) if "Content Security Policy" in m.text else None)

    def sign_in(self, role: str) -> SignedIn:
        self.page.goto(self.console.url + "/console")
        self.page.fill("#key", self.console.tokens[role])
        self.page.click("#sign-in button[type=submit]")
        self.page.wait_for_selector("#role")
        return self

    def go(self, hash_route: str) -> Page:
        self.page.goto(f"{self.console.url}/console#/{hash_route}")
        return self.settled()

    def settled(self) -> Page:
        """The page once the view of the current location is drawn (or has failed)."""
        self.page.wait_for_function("() => { const v = document.getElementById('view');"
                                    " return v && v.dataset.ready && v.dataset.route === location.hash; }",
                                    timeout=30_000)
        return self.page

    def pin(self, vkey: str) -> None:
        self.page.evaluate("k => localStorage.setItem('sealtrail.console.checkpointKey', k)", vkey)

    def shot(self, name: str) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=False)


@pytest.fixture
def new_page(browser: Browser, console: Console) -> Iterator[Any]:
    contexts = []

    def make() -> SignedIn:
        ctx = browser.new_context(viewport={"width": 1280, "height": 800}, accept_downloads=True)
        contexts.append(ctx)
        return SignedIn(ctx.new_page(), console)

    yield make
    for ctx in contexts:
        ctx.close()


def b64flip(text: str) -> str:
    """The base64 of the same bytes with the first byte changed."""
    raw = bytearray(base64.b64decode(text))
    raw[0] ^= 1
    return base64.b64encode(bytes(raw)).decode()
