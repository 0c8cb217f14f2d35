"""``sealtrail bench`` as a user runs it: on the embedded default of this machine, and against a
running deployment (here a ``sealtrail serve``) with a gateway and an auditor key."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from tests.support.serve import TENANT, cli, create_key, send_events, serve_event, start_serve, wait_for_checkpoint


def _report(*args: str) -> dict[str, object]:
    done = cli("bench", *args, "--json", timeout=300)
    assert done.returncode == 0, done.stderr
    report: dict[str, object] = json.loads(done.stdout)
    return report


def test_the_embedded_default_is_measured_end_to_end() -> None:
    """Without --url: a temporary sealtrail serve takes the load; every accepted event is found in
    the log and its latency to a signed checkpoint measured; the server's CPU is reported."""
    report = _report("--seconds", "2", "--batch", "200")
    statuses, lat = report["statuses"], report["ack_to_checkpoint_s"]
    assert isinstance(statuses, dict) and isinstance(lat, dict)
    assert report["accepted_events"] == statuses["202"] * 200 > 0 and set(statuses) == {"202"}
    assert report["log"] == TENANT and "embedded default" in str(report["target"])
    assert 0 < lat["p50"] <= lat["p99"] <= lat["max"] < 30
    assert 0 < int(str(report["signed_per_s_until_drained"])) <= int(str(report["accepted_per_s"]))
    assert int(str(report["server_cpu_us_per_event"])) > 0


def test_a_running_deployment_is_loaded_at_the_asked_rate(tmp_path: Path) -> None:
    """With --url: a log that already holds entries takes 2 s at 2,000 events/s; the report counts
    exactly what was sent, the log grew by that much, and it still verifies."""
    served = start_serve(tmp_path / "data")
    try:
        gateway, auditor = served.tokens["gateway"], create_key(served, "auditor")
        earlier = asyncio.run(send_events(served.url, gateway, [serve_event(i) for i in range(30)]))
        wait_for_checkpoint(served.url, auditor, TENANT, len(earlier))
        report = _report("--url", served.url, "--token", gateway, "--query-token", auditor,
                         "--seconds", "2", "--rate", "2000", "--batch", "100", "--connections", "3")
        assert report["accepted_events"] == 4000 and report["statuses"] == {"202": 40}
        assert report["target"] == served.url and "server_cpu_us_per_event" not in report
        size = wait_for_checkpoint(served.url, auditor, TENANT, 4030)
        verified = cli("verify", "--url", served.url, "--log", TENANT, "--token", auditor)
        assert verified.returncode == 0 and size == 4030, verified.stderr
    finally:
        served.stop()


def test_refusals_fail_the_run_and_say_why(tmp_path: Path) -> None:
    """A bad gateway key, --url without a query key, or a query key that may not read the log's
    entries (an operator's, a gateway's) exits 1 with one line naming the problem, never the key."""
    served = start_serve(tmp_path / "data")
    try:
        auditor = create_key(served, "auditor")
        bad = cli("bench", "--url", served.url, "--token", "st_0000000000000000_nope", "--query-token", auditor,
                  "--seconds", "1")
        missing = cli("bench", "--url", served.url, "--token", served.tokens["gateway"], "--seconds", "1",
                      env={"SEALTRAIL_TOKEN": ""})
        no_proofs = cli("bench", "--url", served.url, "--token", served.tokens["gateway"],
                        "--query-token", served.tokens["operator"], "--seconds", "1")
        no_entries = cli("bench", "--url", served.url, "--token", served.tokens["gateway"],
                         "--query-token", served.tokens["gateway"], "--seconds", "1")
    finally:
        served.stop()
    assert bad.returncode == 1 and bad.stdout == ""
    assert bad.stderr.startswith("bench failed: BenchmarkError: ingest answered 401"), bad.stderr
    assert "st_0000000000000000_nope" not in bad.stderr
    assert missing.returncode == 1 and "an auditor or investigator --query-token" in missing.stderr
    assert no_proofs.returncode == 1 and "answered 403 to GET /v1/logs" in no_proofs.stderr
    assert no_entries.returncode == 1 and "reads proofs, not a log's entries" in no_entries.stderr
    assert served.tokens["operator"] not in no_proofs.stderr + no_entries.stderr
