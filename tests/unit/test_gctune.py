"""Server processes raise the cycle collector's thresholds and freeze their start-up heap."""

from __future__ import annotations

import subprocess
import sys

from sealtrail.cli.embedded.app import EmbeddedOptions
from sealtrail.infra.gctune import GC_THRESHOLDS
from services.ingest.config import IngestOptions


def test_tune_gc_sets_thresholds_and_freezes_the_heap() -> None:
    """Run in a child process: the settings are process-wide and must not leak into the test run."""
    code = ("import gc; from sealtrail.infra.gctune import tune_gc; tune_gc(); "
            "print(gc.get_threshold(), gc.get_freeze_count() > 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == f"{GC_THRESHOLDS} True"


def test_only_server_entry_points_tune() -> None:
    """Apps built in a caller's process (tests, embedding) leave its collector alone by default."""
    assert IngestOptions().tune_gc is False
    assert EmbeddedOptions().tune_gc is False
