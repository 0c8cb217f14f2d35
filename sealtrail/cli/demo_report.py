"""What ``sealtrail demo`` shows after the traffic: each section asks the running server over HTTP.

Sections: an investigation of one session, the analytics table, drift findings, a reveal with a
purpose and the access event it wrote, a subject erasure with its signed receipt. Every call is
the public API an investigator, DPO or auditor would use; tokens go in headers only.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from sealtrail.cli.demo_traffic import Scenario
from sealtrail.core.erasure import verify_erasure_receipt
from sealtrail.core.note import Ed25519Verifier


class DemoError(RuntimeError):
    """A step of the demo failed; the message says which and why."""


@contextlib.contextmanager
def client(url: str) -> Iterator[httpx.Client]:
    """An HTTP client whose failures surface as :class:`DemoError` naming the request."""
    try:
        with httpx.Client(base_url=url, timeout=30) as http:
            yield http
    except httpx.HTTPStatusError as e:
        raise DemoError(f"{e.request.method} {e.request.url.path} answered {e.response.status_code}: "
                        f"{e.response.text[:300]}") from e
    except httpx.HTTPError as e:
        raise DemoError(f"{e.request.method} {e.request.url.path} failed: {e}") from e


def _get(http: httpx.Client, path: str, token: str, **params: Any) -> Any:
    r = http.get(path, params=params, headers={"Authorization": f"Bearer {token}"})
    r.raise_for_status()
    return r.json()


def wait_for_entries(http: httpx.Client, token: str, log: str, size: int, *, timeout_s: float = 60.0) -> None:
    """Wait until ``log`` holds ``size`` entries under a signed checkpoint, and the projector follows."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        r = http.get(f"/v1/logs/{log}/checkpoint", headers={"Authorization": f"Bearer {token}"})
        if r.status_code == 200 and int(r.text.splitlines()[1]) >= size:
            return
        time.sleep(0.2)
    raise TimeoutError(f"the log did not reach {size} entries under a checkpoint within {timeout_s:.0f} s")


def investigation(console: Console, http: httpx.Client, token: str, s: Scenario) -> None:
    """The support session's timeline: who called what, with which decision and outcome."""
    body = _get(http, f"/v1/sessions/{s.session}", token)
    table = Table(title=f"Investigation: session {s.session}", title_justify="left")
    for col in ("#", "time (UTC)", "type", "agent", "server/tool", "tier", "decision", "status"):
        table.add_column(col)
    for c in body["calls"]:
        h = c["header"]
        tool = f"{h.get('server_id', '-')}/{h.get('tool_name', '-')}"
        style = {"deny": "red", "step_up": "yellow"}.get(h.get("decision", ""), "")
        table.add_row(str(c["index"]), h["occurred_at"][11:19], h["type"], h.get("agent_id", "-"), tool,
                      h.get("tool_tier", "-"), h.get("decision", h.get("decision", "-")), h.get("status", "-"),
                      style=style)
    console.print(table)
    summary = body.get("summary") or {}
    console.print(f"  session summary: {summary.get('events', '?')} events, {summary.get('calls', '?')} calls, "
                  f"{summary.get('denials', '?')} denials, {summary.get('errors', '?')} errors")


def _rate(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


ANALYTICS_DAYS = 7
"""The demo's traffic spans a week; the analytics table covers it (the API's default is 24 hours)."""


def analytics(console: Console, http: httpx.Client, token: str, *, now: datetime | None = None) -> None:
    """Per-tool figures and rate-limit hits over the past week, busiest first."""
    since = (now or datetime.now(UTC)) - timedelta(days=ANALYTICS_DAYS)
    window = {"from": since.isoformat(timespec="seconds")}
    body = _get(http, "/v1/analytics/tools", token, **window)
    table = Table(title=f"Analytics: tools, past {ANALYTICS_DAYS} days", title_justify="left")
    for col in ("server/tool", "calls", "success", "errors", "denied", "step-up", "p95 ms"):
        table.add_column(col, justify="left" if col == "server/tool" else "right")
    for t in body["tools"]:
        p95 = (t.get("latency_ms") or {}).get("p95")
        table.add_row(f"{t['server_id']}/{t['tool_name']}", str(t["calls"]), _rate(t["success_rate"]),
                      _rate(t["error_rate"]), _rate(t["deny_rate"]), _rate(t["step_up_rate"]),
                      "-" if p95 is None else f"{p95:.0f}")
    console.print(table)
    limits = _get(http, "/v1/analytics/rate-limits", token, **window)["limits"]
    for lim in limits:
        console.print(f"  rate limit {lim.get('limit_id')} hit {lim.get('events', '?')} times "
                      f"(agent {lim.get('agent_id') or '-'}, tool {lim.get('tool_name') or '-'})")


def drift(console: Console, http: httpx.Client, token: str) -> int:
    """Drift findings of the last complete hour against the week before, and definition changes."""
    body = _get(http, "/v1/analytics/drift", token)
    table = Table(title=f"Drift: {body['tools_evaluated']} tools, last hour vs. baseline", title_justify="left")
    for col in ("server/tool", "metric", "baseline", "recent", "ratio", "z"):
        table.add_column(col)
    for f in body["findings"]:
        table.add_row(f"{f['server_id']}/{f['tool_name']}", f["metric"], f"{f['baseline']:.2f}",
                      f"{f['recent']:.2f}", f"{f['ratio']:.1f}x", f"{f['z']:.1f}", style="bold red")
    console.print(table)
    for c in body["definition_changes"]:
        console.print(f"  tool definition {c['change']}: {c['server_id']}/{c['tool_name']} "
                      f"at {c['occurred_at'][11:19]} (log index {c['index']})")
    for c in _get(http, "/v1/analytics/definition-changes", token)["stale"]:
        console.print(f"  [yellow]agent {c['agent_id']} last used {c['server_id']}/{c['tool_name']} under a "
                      f"definition that has since {c['change']}[/yellow]")
    return len(body["findings"])


def reveal(console: Console, http: httpx.Client, token: str, s: Scenario) -> str:
    """Open one payload with a stated purpose; the access event is in the log before the answer."""
    r = http.get(f"/v1/calls/{s.reveal_event_id}", params={"purpose": "incident-review"},
                 headers={"Authorization": f"Bearer {token}",
                          "Sealtrail-Purpose-Note": "ticket%20INC-311%3A%20customer%20complaint"})
    r.raise_for_status()
    body = r.json()
    console.print(f"  revealed event {s.reveal_event_id} (purpose incident-review): "
                  f"payload_state={body['payload_state']}")
    console.print(f"  payload: {body['payload']}")
    access_id = str(body["access_event_id"])
    console.print(f"  access event written before the answer: {access_id}")
    return access_id


def show_access_event(console: Console, http: httpx.Client, token: str, access_id: str) -> None:
    """The access event as the log holds it (header only: the free-text note stays sealed)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        r = http.get(f"/v1/calls/{access_id}", headers={"Authorization": f"Bearer {token}"})
        if r.status_code == 200:
            h = r.json()["header"]
            fields = {k: h[k] for k in ("type", "action", "purpose_code", "target_event_id", "accessor_key_id")
                      if k in h}
            console.print(f"  in the log at index {r.json()['index']}: {fields}")
            return
        time.sleep(0.2)
    console.print("  (the access event is not logged yet)")


def erase(console: Console, http: httpx.Client, token: str, s: Scenario) -> dict[str, Any]:
    """Crypto-shred one subject; print the record and its signed receipt."""
    r = http.post("/v1/subjects/erase", headers={"Authorization": f"Bearer {token}"},
                  json={"subject": s.erase_subject, "request_ref": "DSR-2026-017", "legal_basis": "gdpr.art17"})
    r.raise_for_status()
    body: dict[str, Any] = r.json()
    console.print(f"  erased {len(body['erased_key_ids'])} key(s), {body['payloads_deleted']} payloads deleted, "
                  f"{body['index_rows_deleted']} index rows; erasure event {body['event_id']}")
    console.print("  signed receipt:")
    console.print("    " + str(body["receipt"]).strip().replace("\n", "\n    "), highlight=False)
    keys = http.get("/v1/keys").json()["keys"]
    verifiers = [Ed25519Verifier.from_vkey(k["vkey"]) for k in keys if k["purpose"] == "erasure-receipt"]
    checked = verify_erasure_receipt(str(body["receipt"]), verifiers)
    console.print(f"  receipt signature checked against the published erasure-receipt key: request "
                  f"{checked.request_ref}, {checked.payloads_deleted} payloads deleted", style="green")
    return body
