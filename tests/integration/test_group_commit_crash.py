"""``sealtrail serve`` SIGKILLed under 64 connections posting one event per request: group commit
keeps ingest's promise. Every event answered 202 is in the log exactly once after restarts, no
event is logged twice, and ``sealtrail verify`` accepts the log."""

from __future__ import annotations

from pathlib import Path

from tests.support.crashload import every_acked_logged_once, load_then_kill
from tests.support.serve import create_key, start_serve

KILLS = 3


async def test_sigkill_under_single_event_load_loses_and_repeats_nothing(tmp_path: Path) -> None:
    """Three times: 64 connections post one event per request for a few seconds and the server is
    SIGKILLed mid-load, then restarted on the same data directory. Afterwards every acknowledged
    event is in the log exactly once, no event id appears twice, many requests were acknowledged
    (so groups held several batches while being killed), and verify passes."""
    data = tmp_path / "data"
    served = start_serve(data)
    gateway = served.tokens["gateway"]
    auditor = create_key(served, "auditor")
    acked: list[str] = []
    sent = 0
    for kill in range(KILLS):
        sent += await load_then_kill(served, gateway, acked, seconds=2.0 + kill)
        served = start_serve(data)
    try:
        assert len(acked) >= 200, f"only {len(acked)} of {sent} requests were acknowledged"
        assert len(set(acked)) == len(acked)
        await every_acked_logged_once(served, auditor, acked, sent)
    finally:
        served.stop()
