"""The reference MCP servers from npm, pinned by ``tests/support/mcp-servers/package-lock.json`` and
installed once (``npm ci --ignore-scripts``) into ``~/.cache/sealtrail/npm/mcp-servers-VERSION/``."""

from __future__ import annotations

import fcntl
import shutil
import subprocess
from pathlib import Path

import pytest

VERSION = "2026.8.31"
PINS = Path(__file__).resolve().parent / "mcp-servers"
CACHE = Path.home() / ".cache" / "sealtrail" / "npm" / f"mcp-servers-{VERSION}"


def mcp_servers() -> Path:
    """``node_modules/@modelcontextprotocol`` of the pinned install (installed on first use)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        lockfile = PINS / "package-lock.json"
        stamp = CACHE / ".installed-lock"
        if not stamp.exists() or stamp.read_bytes() != lockfile.read_bytes():
            _install(lockfile, stamp)
    return CACHE / "node_modules" / "@modelcontextprotocol"


def _install(lockfile: Path, stamp: Path) -> None:
    if shutil.which("npm") is None or shutil.which("node") is None:
        pytest.fail("Node.js 20+ with npm is needed for the reference MCP servers (Debian: apt-get install nodejs "
                    "npm); this test cannot run without them", pytrace=False)
    shutil.copy(PINS / "package.json", CACHE / "package.json")
    shutil.copy(lockfile, CACHE / "package-lock.json")
    done = subprocess.run(["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund"], cwd=CACHE,
                          capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        pytest.fail(f"npm ci of the reference MCP servers failed:\n{done.stderr[-2000:]}", pytrace=False)
    stamp.write_bytes(lockfile.read_bytes())
