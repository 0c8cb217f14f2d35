"""``python -m sealtrail.cli.main``: the CLI without the console script (used by tests)."""

from __future__ import annotations

from sealtrail.cli import main

if __name__ == "__main__":
    main()
