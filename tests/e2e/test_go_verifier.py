"""An outside verifier checks a live log: ``tests/interop/goverify``, a Go program built on the
transparency-dev libraries (github.com/transparency-dev/merkle and formats) and Go's
golang.org/x/mod/sumdb/note, sharing no code with Sealtrail. It reads the query API and checks the
signed and cosigned checkpoints, consistency between them, that the entries hash to the signed
root, every inclusion proof and some tlog-proof files: on the PostgreSQL stack, where it refuses
the same log once its rows were tampered with, and on ``sealtrail serve`` across a rotation of the
signing keys."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.query import QueryStack, on_port
from tests.support.serve import TENANT as SERVE_TENANT
from tests.support.serve import cli, create_key, send_events, serve_event, start_serve, wait_for_checkpoint
from tests.support.tamper import (
    TENANT,
    Tamper,
    delete_entry,
    edit_byte,
    resign_checkpoint,
    swap_entries,
    tampered,
    truncate,
)

SOURCE = Path(__file__).resolve().parents[1] / "interop" / "goverify"
GO_ENV = {"GOTOOLCHAIN": "local", "GOFLAGS": "-mod=readonly", "CGO_ENABLED": "0"}


@pytest.fixture(scope="module")
def goverify(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The verifier, built from its pinned go.mod and go.sum (modules come from the Go proxy)."""
    go = shutil.which("go")
    if go is None:
        pytest.fail("the Go toolchain is needed to build tests/interop/goverify and is not on PATH")
    binary = tmp_path_factory.mktemp("goverify") / "goverify"
    done = subprocess.run([go, "build", "-o", str(binary), "."], cwd=SOURCE, env={**os.environ, **GO_ENV},
                          capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        pytest.fail(f"building tests/interop/goverify failed:\n{done.stderr[-3000:]}")
    return binary


def _verify(binary: Path, url: str, log: str, token: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(binary), "-url", url, "-log", log, "-tlog-proofs", "5"],
                          env={**os.environ, "SEALTRAIL_TOKEN": token},
                          capture_output=True, text=True, timeout=300, check=False)


async def _run(binary: Path, stack: QueryStack, log: str) -> subprocess.CompletedProcess[str]:
    async with on_port(stack.query_app) as url:
        return await asyncio.to_thread(_verify, binary, url, log, stack.tokens[f"{log}:auditor"])


async def test_the_seeded_log_verifies(goverify: Path, stack: QueryStack, tamper_log: int) -> None:
    """Every checkpoint, entry and proof of the tamper tenant's untouched log passes the outside checks."""
    done = await _run(goverify, stack, TENANT)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["entries"] == tamper_log and summary["inclusion_proofs"] == tamper_log
    assert summary["checkpoints"] >= 1 and summary["tlog_proofs"] == 5
    assert summary["consistency_proofs"] == summary["checkpoints"] - 1 or summary["checkpoints"] == 1


CASES: list[tuple[Tamper, str]] = [
    (edit_byte, "do not hash to the root"), (delete_entry, "expected index 12, got 13"),
    (swap_entries, "do not hash to the root"), (truncate, "got up to index 30"),
    (resign_checkpoint, "note has no verifiable signatures"),
]


@pytest.mark.parametrize(("tamper", "says"), CASES, ids=[t.__name__ for t, _ in CASES])
async def test_a_tampered_log_is_refused(goverify: Path, stack: QueryStack, tamper_log: int,
                                         tamper: Tamper, says: str) -> None:
    """Each change made behind the API fails the outside verifier, which says what it found."""
    async with tampered(stack, tamper):
        done = await _run(goverify, stack, TENANT)
    assert done.returncode == 1 and done.stdout == "", done.stdout
    assert done.stderr.startswith("verification failed:") and says in done.stderr, done.stderr


def test_sealtrail_serve_verifies_across_a_signing_key_rotation(goverify: Path, tmp_path: Path) -> None:
    """The embedded default (SQLite, local log) passes the same checks, with checkpoints signed
    under two key pairs: the rotation leaves every earlier checkpoint verifiable and consistent."""
    served = start_serve(tmp_path / "data")
    try:
        auditor = create_key(served, "auditor")
        gateway = served.tokens["gateway"]
        assert len(asyncio.run(send_events(served.url, gateway, [serve_event(i) for i in range(300)]))) == 300
        wait_for_checkpoint(served.url, auditor, SERVE_TENANT, 300)
        rotated = cli("admin", "signing-key", "rotate", "--data-dir", str(served.data_dir))
        assert rotated.returncode == 0, rotated.stderr
        assert len(asyncio.run(send_events(served.url, gateway, [serve_event(i) for i in range(40)]))) == 40
        wait_for_checkpoint(served.url, auditor, SERVE_TENANT, 340)
        done = _verify(goverify, served.url, SERVE_TENANT, auditor)
    finally:
        served.stop()
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["entries"] == summary["inclusion_proofs"] == 340
    assert summary["checkpoints"] >= 2 and summary["consistency_proofs"] >= 1
