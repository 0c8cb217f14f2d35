"""The TypeScript SDK (``sdk/typescript``) under Node's own test runner: its unit tests, the
verifiers against the shared vectors and the Python core's golden data, and the integration tests
against live ``sealtrail serve`` processes (spool crash and restart, the MCP integration).

The npm dependencies come from the committed ``package-lock.json`` (``npm ci``, no install
scripts), installed once per lock file; npm's cache (``~/.npm``) is reused between runs."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

SDK = Path(__file__).resolve().parents[2] / "sdk" / "typescript"
STAMP = SDK / "node_modules" / ".sealtrail-lock-sha256"
MIN_NODE = (20, 19)
SUMMARY = re.compile(r"^\s*(?:ℹ|#) (?:tests|suites|pass|fail|cancelled|skipped|todo|duration_ms) ")


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"`{name}` is needed for the TypeScript SDK tests and is not on PATH (install Node.js "
                    f"{MIN_NODE[0]}.{MIN_NODE[1]} or newer, which brings npm)")
    return path


def _check_node(node: str) -> None:
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=False).stdout.strip()
    m = re.match(r"v(\d+)\.(\d+)", version)
    if m is None or (int(m[1]), int(m[2])) < MIN_NODE:
        pytest.fail(f"the TypeScript SDK needs Node.js {MIN_NODE[0]}.{MIN_NODE[1]} or newer, found {version!r}")


def _npm_ci(npm: str) -> None:
    lock = hashlib.sha256((SDK / "package-lock.json").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == lock:
        return
    done = subprocess.run([npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund"], cwd=SDK,
                          capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0:
        pytest.fail(f"npm ci in {SDK} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    STAMP.write_text(lock)


def test_typescript_sdk(capsys: pytest.CaptureFixture[str]) -> None:
    """``npm test`` in sdk/typescript passes; its summary lines are printed."""
    node, npm = _tool("node"), _tool("npm")
    _check_node(node)
    _npm_ci(npm)
    env = {**os.environ, "NO_COLOR": "1", "FORCE_COLOR": "0"}
    done = subprocess.run([npm, "test", "--silent"], cwd=SDK, capture_output=True, text=True, timeout=1500,
                          env=env, check=False)
    summary = [line for line in done.stdout.splitlines() if SUMMARY.match(line)]
    with capsys.disabled():
        print("\nsdk/typescript (node --test): " + ", ".join(s.strip().lstrip("ℹ# ") for s in summary))
    if done.returncode != 0:
        pytest.fail(f"npm test in {SDK} failed ({done.returncode}):\n{done.stdout[-20000:]}\n{done.stderr[-5000:]}")
    assert any(re.search(r"fail 0$", s) for s in summary), done.stdout[-3000:]
    assert any(re.search(r"pass [1-9]", s) for s in summary), done.stdout[-3000:]
