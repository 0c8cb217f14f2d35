"""Debian's Chromium for the console's browser tests, driven by Playwright (system browser,
``executable_path``; Playwright downloads nothing). Missing Chromium is installed with apt-get
when running as root, as the devstack installs PostgreSQL; otherwise the tests fail saying what
to install."""

from __future__ import annotations

import shutil
from pathlib import Path

from sealtrail.devstack._proc import apt_install

CHROMIUM = Path("/usr/bin/chromium")


def chromium() -> Path:
    """The Chromium binary, installed first if missing."""
    if not CHROMIUM.exists() and shutil.which("chromium") is None:
        apt_install(["chromium"], why="the console's browser tests need Debian's chromium")
    found = CHROMIUM if CHROMIUM.exists() else Path(shutil.which("chromium") or "")
    if not found.is_file():
        raise RuntimeError("chromium is not installed even after apt-get install chromium")
    return found
