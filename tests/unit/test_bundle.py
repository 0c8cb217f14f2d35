"""Export bundles: written as a directory or a tar, verified offline, and tampering caught."""

from __future__ import annotations

import base64
from pathlib import Path

import orjson
import pytest

from sealtrail.audit import audit_bundle
from sealtrail.audit.bundle import ENTRIES, BundleMeta, BundleWriter
from sealtrail.errors import InvalidInputError, VerificationError
from tests.unit.test_audit import ERASURE, ORIGIN, Log


def _write(log: Log, out: Path) -> None:
    writer = BundleWriter(out)
    writer.write_header(BundleMeta("acme", ORIGIN, len(log.entries), "2026-11-24T00:00:00Z"),
                        log.published(), [log.note(10), log.note(len(log.entries))])
    writer.write_entries(log.audit_entries())
    writer.close()


@pytest.mark.parametrize("name", ["bundle", "bundle.tar", "bundle.tar.gz"])
def test_bundle_verifies_offline_in_every_form(tmp_path: Path, name: str) -> None:
    """A bundle written as a directory, a tar or a gzipped tar verifies with the same counts."""
    log = Log(30, [ERASURE])
    log.present.pop(6)  # sealed with Alice's key, which the erasure event names
    _write(log, tmp_path / name)
    report = audit_bundle(tmp_path / name)
    assert (report.entries, report.checkpoints, report.payloads_erased) == (31, 2, 1)


def test_edited_bundle_names_the_entry(tmp_path: Path) -> None:
    """An entry edited inside the bundle fails verification at its index."""
    _write(Log(30), tmp_path / "b")
    lines = (tmp_path / "b" / ENTRIES).read_bytes().splitlines()
    row = orjson.loads(lines[17])
    row["entry"] = base64.b64encode(base64.b64decode(row["entry"]).replace(b"tool_call", b"tool_cell")).decode()
    lines[17] = orjson.dumps(row)
    (tmp_path / "b" / ENTRIES).write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(VerificationError) as e:
        audit_bundle(tmp_path / "b")
    assert e.value.index == 17


def test_not_a_bundle_and_no_overwrite(tmp_path: Path) -> None:
    """A path that is no bundle is refused with a reason; writing never overwrites."""
    (tmp_path / "x.tar").write_bytes(b"not a tar")
    with pytest.raises(InvalidInputError):
        audit_bundle(tmp_path / "x.tar")
    with pytest.raises(InvalidInputError):
        BundleWriter(tmp_path / "x.tar")
