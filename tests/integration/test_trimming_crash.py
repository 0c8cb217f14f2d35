"""``sealtrail serve`` SIGKILLed while its local log is trimmed continuously under load: trimming
deletes only what the ledger committed, so every event answered 202 is in the log exactly once
after restarts, and ``sealtrail verify`` accepts the log."""

from __future__ import annotations

from pathlib import Path

import pytest

from sealtrail.cli.embedded.datadir import SEALED_TOPIC
from tests.support.crashload import every_acked_logged_once, load_then_kill
from tests.support.serve import create_key, start_serve

KILLS = 4


def _first_offsets(data: Path) -> list[int]:
    """The base offset of the first segment of each sealed-topic partition."""
    out = []
    for part in sorted((data / "log" / SEALED_TOPIC).iterdir()):
        files = sorted(part.glob("*.log")) if part.is_dir() else []
        if files:
            out.append(int(files[0].stem))
    return out


async def test_sigkill_while_trimming_loses_and_repeats_nothing(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Four times: 64 connections post events while the local log (64 KiB segments) is trimmed
    every 50 ms, and the server is SIGKILLed mid-load, then restarted on the same data
    directory. Segments were deleted (the first offsets moved up), every acknowledged event is in
    the log exactly once, and verify passes."""
    monkeypatch.setenv("SEALTRAIL_LOG_TRIM_INTERVAL_S", "0.05")
    monkeypatch.setenv("SEALTRAIL_LOG_SEGMENT_BYTES", str(64 * 1024))
    data = tmp_path / "data"
    served = start_serve(data)
    gateway = served.tokens["gateway"]
    auditor = create_key(served, "auditor")
    acked: list[str] = []
    sent = 0
    trimmed = []
    for kill in range(KILLS):
        sent += await load_then_kill(served, gateway, acked, seconds=1.5 + kill)
        trimmed.append(max(_first_offsets(data), default=0))
        served = start_serve(data)
    try:
        assert len(acked) >= 200, f"only {len(acked)} of {sent} requests were acknowledged"
        assert len(set(acked)) == len(acked)
        assert trimmed[-1] > 0 and trimmed == sorted(trimmed), f"first offsets after each kill: {trimmed}"
        await every_acked_logged_once(served, auditor, acked, sent)
    finally:
        served.stop()
