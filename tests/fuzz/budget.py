"""How many examples the fuzz tests run: bounded by default, raised by ``SEALTRAIL_FUZZ_EXAMPLES``."""

from __future__ import annotations

import os

ENV = "SEALTRAIL_FUZZ_EXAMPLES"


def examples(default: int) -> int:
    """``SEALTRAIL_FUZZ_EXAMPLES`` when set and larger than ``default``, else ``default``."""
    raw = os.environ.get(ENV, "")
    return max(default, int(raw)) if raw.isdigit() else default
