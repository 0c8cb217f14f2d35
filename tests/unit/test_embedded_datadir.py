"""The embedded default's data directory: where it is by default and how the first run writes it."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from sealtrail.cli.embedded.datadir import DataDir, default_data_dir, prepare_files


def test_default_data_dir_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """SEALTRAIL_DATA_DIR wins over XDG_DATA_HOME/sealtrail, which wins over
    ~/.local/share/sealtrail; the default is never in the working directory."""
    monkeypatch.delenv("SEALTRAIL_DATA_DIR", raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_data_dir() == tmp_path / ".local" / "share" / "sealtrail"
    monkeypatch.setenv("XDG_DATA_HOME", "relative")  # not absolute: ignored, as XDG says
    assert default_data_dir() == tmp_path / ".local" / "share" / "sealtrail"
    monkeypatch.setenv("XDG_DATA_HOME", "/xdg")
    assert default_data_dir() == Path("/xdg/sealtrail")
    monkeypatch.setenv("SEALTRAIL_DATA_DIR", "/data")
    assert default_data_dir() == Path("/data")


def test_prepare_files_owner_only_and_never_overwritten(tmp_path: Path) -> None:
    """The directory is 0700, the KEK and service keys 0600, and a second run keeps every secret."""
    data = DataDir(tmp_path / "d")
    prepare_files(data)
    secrets = [data.kek, data.receipt_key, data.query_key]
    before = [p.read_bytes() for p in secrets]
    assert stat.S_IMODE(data.root.stat().st_mode) == 0o700
    assert stat.S_IMODE(data.keys.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in secrets)
    prepare_files(data)
    assert [p.read_bytes() for p in secrets] == before
    assert data.load_kek().kek_id and data.settings().kek_file == data.kek
