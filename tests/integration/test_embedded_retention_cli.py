"""`sealtrail admin tenant retention --data-dir`: the embedded default's payload retention."""

from __future__ import annotations

import asyncio
from pathlib import Path

from typer.testing import CliRunner

from sealtrail import cli
from sealtrail.cli.embedded.datadir import DataDir, initialise
from tests.support.embedded import read_rows


def _invoke(*args: str) -> tuple[int, str, str]:
    cli._register()
    result = CliRunner().invoke(cli.app, list(args))
    return result.exit_code, result.stdout, result.stderr


def _months(db: Path, tenant: str) -> object:
    return read_rows(db, "SELECT retention_months FROM tenants WHERE tenant_id = ?", (tenant,))[0][0]


def test_retention_is_set_and_cleared_in_the_data_dir(tmp_path: Path) -> None:
    data = DataDir(tmp_path / "data")
    first = asyncio.run(initialise(data))
    assert first is not None
    d = str(data.root)
    code, out, err = _invoke("admin", "tenant", "retention", first.tenant, "--months", "3", "--data-dir", d)
    assert code == 0, err
    assert out == f"tenant {first.tenant}: payloads kept 3 months\n" and _months(data.db, first.tenant) == 3
    code, out, err = _invoke("admin", "tenant", "retention", first.tenant, "--keep-forever", "--data-dir", d)
    assert code == 0 and _months(data.db, first.tenant) is None, err
    code, _, err = _invoke("admin", "tenant", "retention", "nobody", "--months", "1", "--data-dir", d)
    assert code == 1 and "no tenant nobody" in err
    code, _, err = _invoke("admin", "tenant", "retention", first.tenant, "--months", "1", "--data-dir",
                           str(tmp_path / "empty"))
    assert code == 1 and "no Sealtrail database in" in err
