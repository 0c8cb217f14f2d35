"""Pinned verifier keys (``sealtrail verify --vkey``): the published keys cannot loosen what pins require."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sealtrail.audit import audit_bundle
from sealtrail.audit.bundle import BundleMeta, BundleWriter
from sealtrail.core import merkle
from sealtrail.core.checkpoint import Checkpoint
from sealtrail.core.note import sign_note
from sealtrail.errors import VerificationError
from tests.unit.test_audit import ORIGIN, Log


def _bundle(out: Path, log: Log, keys: list[dict[str, Any]], *, cosigned: bool = True) -> Path:
    size = len(log.entries)
    body = Checkpoint(ORIGIN, size, merkle.root_at(log.store, size)).body()
    note = log.note(size) if cosigned else sign_note(body, [log.key])
    writer = BundleWriter(out)
    writer.write_header(BundleMeta("acme", ORIGIN, size, ""), keys, [note])
    writer.write_entries(log.audit_entries())
    writer.close()
    return out


def _vkeys(log: Log) -> tuple[str, str]:
    return log.key.verifier().vkey(), log.clock.verifier().vkey()


def test_a_checkpoint_key_pinned_alone_is_refused_whatever_keys_json_says(tmp_path: Path) -> None:
    """The reviewer's t8.py: a log signed only with a (retired, leaked) checkpoint key, whose
    keys.json gives that key no window and lists no cosigner. Pinning that key alone is refused,
    and the reason names the cosign key to pin."""
    log = Log(3)
    checkpoint_vkey, _ = _vkeys(log)
    keys = [{"purpose": "checkpoint", "vkey": checkpoint_vkey, "not_before": None, "not_after": None}]
    path = _bundle(tmp_path / "forged", log, keys, cosigned=False)
    with pytest.raises(VerificationError, match="also pin the log's cosign key"):
        audit_bundle(path, pinned_vkeys=[checkpoint_vkey])


@pytest.mark.parametrize("listing", ["relabelled", "dropped"])
def test_a_pinned_cosigner_is_required_even_when_keys_json_hides_it(tmp_path: Path, listing: str) -> None:
    """Both keys pinned; keys.json calls the cosign key a receipt key, or leaves it out: a
    checkpoint with no cosignature still fails (the pin's type, not keys.json, makes it a cosigner)."""
    log = Log(3)
    checkpoint_vkey, cosign_vkey = _vkeys(log)
    keys: list[dict[str, Any]] = [
        {"purpose": "checkpoint", "vkey": checkpoint_vkey, "not_before": None, "not_after": None}]
    if listing == "relabelled":
        keys.append({"purpose": "receipt", "vkey": cosign_vkey, "not_before": None, "not_after": None})
    path = _bundle(tmp_path / "forged", log, keys, cosigned=False)
    with pytest.raises(VerificationError, match="tree size 3: checkpoint carries no trusted cosignature"):
        audit_bundle(path, pinned_vkeys=[checkpoint_vkey, cosign_vkey])
    honest = _bundle(tmp_path / "honest", log, keys)
    assert audit_bundle(honest, pinned_vkeys=[checkpoint_vkey, cosign_vkey]).entries == 3


def test_pinning_only_the_cosign_key_asks_for_the_checkpoint_key(tmp_path: Path) -> None:
    """A cosign key pinned alone can verify nothing: the reason says to pin the checkpoint key."""
    log = Log(3)
    path = _bundle(tmp_path / "b", log, log.published())
    with pytest.raises(VerificationError, match="also pin the log's checkpoint key"):
        audit_bundle(path, pinned_vkeys=[_vkeys(log)[1]])
