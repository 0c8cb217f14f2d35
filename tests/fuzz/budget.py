"""How many examples the fuzz tests run: bounded by default, raised by ``SEALTRAIL_FUZZ_EXAMPLES``."""

from __future__ import annotations

import os

ENV = "SEALTRAIL_FUZZ_EXAMPLES"


BASE = 25
"""Examples per HTTP operation by default; ``SEALTRAIL_FUZZ_EXAMPLES`` replaces it."""


def examples(default: int) -> int:
    """``default`` scaled by ``SEALTRAIL_FUZZ_EXAMPLES / BASE`` (unchanged when the variable is unset)."""
    raw = os.environ.get(ENV, "")
    return max(1, round(default * int(raw) / BASE)) if raw.isdigit() and int(raw) > 0 else default
