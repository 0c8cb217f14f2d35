"""`sealtrail admin signing-key rotate|list` against a real PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sealtrail.core.verify import verifier_from_vkey


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sealtrail.cli.main", *args], env=env, capture_output=True,
                          text=True, timeout=60, check=False)


def test_rotate_prints_new_vkeys_and_closes_the_old_window(fresh_db_url: str, tmp_path: Path) -> None:
    """Each rotation prints a checkpoint vkey and a cosigner vkey, writes 0600 key files, and the
    list shows the earlier pair with a closed window."""
    env = {**os.environ, "SEALTRAIL_DATABASE_URL": fresh_db_url, "SEALTRAIL_SIGNING_KEY_DIR": str(tmp_path / "k")}
    first = _cli("admin", "signing-key", "rotate", env=env)
    second = _cli("admin", "signing-key", "rotate", env=env)
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    vkeys = first.stdout.split() + second.stdout.split()
    assert len(set(vkeys)) == 4
    for v in vkeys:
        verifier_from_vkey(v)
    files = sorted((tmp_path / "k").iterdir())
    assert len(files) == 4
    assert all(f.stat().st_mode & 0o077 == 0 for f in files)
    listed = _cli("admin", "signing-key", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.strip().splitlines()
    assert len(lines) == 4
    assert sum(1 for line in lines if ".. now" in line) == 2
    assert "PRIVATE" not in listed.stdout + first.stdout + second.stdout
