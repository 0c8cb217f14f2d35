"""Cycle-collector settings for long-running service processes.

A service allocates tens of thousands of short-lived containers per batch (parsed events,
headers, rows) that reference counting frees. At CPython's default first threshold (700) the
cycle collector runs hundreds of times per batch, re-scanning them and, every few batches, the
whole heap: measured at over a third of the ledger's CPU. A higher first threshold, and freezing
the start-up heap out of full collections, keeps cycle collection for the cycles that do occur.
Call :func:`tune_gc` once, in a server process, after the service is wired (never in a library
caller's process: the settings are process-wide).
"""

from __future__ import annotations

import gc

GC_THRESHOLDS = (200_000, 10, 10)


def tune_gc() -> None:
    """Fewer cycle collections, none over the start-up heap."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
