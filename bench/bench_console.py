"""Console benchmark: first-load asset size, and the time of each page's API requests.

Usage: ``python bench/bench_console.py [--copies N] [--reps R]``

1. Assets: every file the first load of ``/console`` fetches (the page, its stylesheet and the
   ES modules app.js imports), raw and gzip-compressed (level 6, what a reverse proxy typically
   applies; Sealtrail itself serves them uncompressed); and apart, the Ed25519 fallback that only a
   browser without Ed25519 in WebCrypto loads.
2. Pages: starts ``sealtrail serve`` (SQLite, one process) on a fresh data directory, sends the
   demo's traffic N times (``sealtrail.cli.demo_traffic``, ~1,900 events a copy), signs in through
   ``POST /console/session``, and times the API requests each view makes, R times, with the
   session cookie, one after the other: search (``/v1/calls?limit=50``), session timeline, call
   (detail, definition changes, tlog-proof, entry bytes), and analytics over 24 h, 7 d and 30 d
   (tools, agents, servers, drift, rate limits, and one time series for the chart). Times are
   client-observed over loopback (server time plus a little); the browser sends a page's
   requests in parallel.

Writes bench/results/console.json. This is the embedded SQLite mode at the scale loaded, not the
1,000,000-entry PostgreSQL deployment: say which when quoting.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import re
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from bench.machine import describe
from sealtrail.cli.demo_traffic import SESSION, scenario
from services.query.console.router import STATIC
from tests.support.serve import create_key, send_events, start_serve, wait_for_checkpoint

RESULTS = Path(__file__).parent / "results" / "console.json"


IMPORT = re.compile(r"""^import .* from "\./([\w.-]+)";$""", re.MULTILINE)


def first_load() -> list[Path]:
    """index.html, the stylesheet, app.js and every module it imports statically, transitively
    (the Ed25519 fallback, imported dynamically where WebCrypto lacks Ed25519, is not among them)."""
    modules, todo = [], ["app.js"]
    while todo:
        name = todo.pop()
        if name not in modules:
            modules.append(name)
            todo += IMPORT.findall((STATIC / name).read_text())
    return [STATIC / "index.html", STATIC / "console.css", *(STATIC / m for m in sorted(modules))]


def _sizes(files: list[Path]) -> dict[str, Any]:
    packed = {f.name: len(gzip.compress(f.read_bytes(), compresslevel=6)) for f in files}
    return {"files": len(files), "raw_bytes": sum(f.stat().st_size for f in files),
            "gzip_bytes": sum(packed.values()), "per_file_gzip": packed}


def asset_sizes() -> dict[str, Any]:
    first = first_load()
    lazy = [p for p in sorted(STATIC.glob("*.js")) if p not in first]
    return {"first_load": _sizes(first), "loaded_on_demand": _sizes(lazy), "budget_gzip_bytes": 300 * 1024}


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)


def analytics_paths(now: datetime, hours: int = 24) -> list[str]:
    """The analytics page's requests for the last ``hours`` hours, as analytics.js sends them: the
    tables, drift and rate limits, and one time series (bucketed by the server)."""
    end = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    window = f"from={(end - timedelta(hours=hours)).isoformat()}&to={end.isoformat()}"
    return [f"/v1/analytics/{p}?{window}" for p in ("tools", "agents", "servers")] + [
        "/v1/analytics/drift", f"/v1/analytics/rate-limits?{window}", f"/v1/analytics/series?{window}"]


def time_pages(client: httpx.Client, call_id: str, reps: int, *, session: str = SESSION,
               now: datetime | None = None) -> dict[str, Any]:
    """Each page's requests, one after the other, ``reps`` times: page and request times (ms).
    ``now`` places the analytics windows (default: the current time)."""
    now = now or datetime.now(UTC)
    detail = client.get(f"/v1/calls/{call_id}").json()
    agent = detail["header"]["agent_id"]
    call = [f"/v1/calls/{call_id}", f"/v1/analytics/definition-changes?agent_id={agent}&limit=1000",
            f"/v1/events/{call_id}/tlog-proof",
            f"/v1/logs/{detail['log']}/entries?start={detail['index']}&end={detail['index'] + 1}"]
    pages = {"search": ["/v1/calls?limit=50"], "session": [f"/v1/sessions/{session}"], "call": call,
             "analytics": analytics_paths(now), "analytics_7d": analytics_paths(now, 168),
             "analytics_30d": analytics_paths(now, 720)}
    out: dict[str, Any] = {}
    for name, paths in pages.items():
        page_s, request_s = [], []
        by_path: dict[str, list[float]] = {p.split("?")[0]: [] for p in paths}
        for _ in range(reps):
            started = time.perf_counter()
            for p in paths:
                t = time.perf_counter()
                r = client.get(p.replace("+00:00", "Z"))
                r.raise_for_status()
                request_s.append(time.perf_counter() - t)
                by_path[p.split("?")[0]].append(request_s[-1])
            page_s.append(time.perf_counter() - started)
        out[name] = {"requests_per_page": len(paths), "page_p50_ms": pct(page_s, 0.5),
                     "page_p95_ms": pct(page_s, 0.95), "request_p95_ms": pct(request_s, 0.95),
                     "request_mean_ms": round(statistics.mean(request_s) * 1000, 2),
                     "requests_p50_ms": {k: pct(v, 0.5) for k, v in by_path.items()},
                     "requests_p95_ms": {k: pct(v, 0.95) for k, v in by_path.items()}}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--copies", type=int, default=10)
    parser.add_argument("--reps", type=int, default=30)
    args = parser.parse_args()
    assets = asset_sizes()
    with tempfile.TemporaryDirectory() as tmp:
        served = start_serve(Path(tmp) / "data")
        try:
            gateway, investigator = served.tokens["gateway"], create_key(served, "investigator")
            sent, call_id = 0, ""
            for copy in range(args.copies):
                demo = scenario(datetime.now(UTC), seed=copy)
                call_id = call_id or demo.reveal_event_id
                sent += len(asyncio.run(send_events(served.url, gateway, demo.events)))
            wait_for_checkpoint(served.url, investigator, "default", sent, timeout=600)
            with httpx.Client(base_url=served.url, timeout=60) as client:
                client.post("/console/session", json={"key": investigator}).raise_for_status()
                deadline = time.monotonic() + 120
                while client.get(f"/v1/calls/{call_id}").status_code != 200 and time.monotonic() < deadline:
                    time.sleep(0.5)
                pages = time_pages(client, call_id, args.reps)
        finally:
            served.stop()
    result = {"machine": describe("fastapi", "uvicorn"), "mode": "sealtrail serve (SQLite)",
              "entries": sent, "reps": args.reps, "assets": assets, "pages": pages}
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
