"""Holding a log to a checkpoint remembered from an earlier audit (``sealtrail verify --state``).

Whoever holds a log's signing key could rewrite its history and sign new checkpoints over it; the
served log would then verify on its own. A remembered checkpoint catches it, and catches a log
that was rolled back or that shows two views at one size."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from sealtrail import cli
from sealtrail.audit import audit_bundle
from sealtrail.audit.bundle import BundleMeta, BundleWriter
from sealtrail.core.audit import LogAudit, trusted_keys
from sealtrail.core.note import Ed25519Signer
from sealtrail.errors import InconsistentCheckpointError, VerificationError
from tests.unit.test_audit import ORIGIN, Log


def _rewritten(log: Log, n: int) -> Log:
    """Another history of ``n`` entries for the same log, signed with the same keys: its entry 0
    differs (its payload digest and every later entry are the same)."""
    from sealtrail.core import merkle
    from sealtrail.core.canonical import canonical_json
    from sealtrail.core.chain import chain_fold, chain_seed

    other = Log(n)
    other.headers[0] = {**other.headers[0], "status": "error"}
    other.entries = [canonical_json(h) for h in other.headers]
    other.chains = chain_fold(chain_seed(ORIGIN), merkle.leaf_hashes(other.entries))
    other.store = merkle.MemoryNodeStore()
    other.store.add_runs(merkle.CompactRange().extend(merkle.leaf_hashes(other.entries)))
    other.key, other.clock = log.key, log.clock
    return other


def _audit(log: Log, notes: list[str], remembered: str) -> LogAudit:
    audit = LogAudit(trusted_keys(log.published()), ORIGIN, notes, remembered=remembered)
    entries = log.audit_entries()[:audit.size]
    for pos in range(0, len(entries), 7):
        audit.feed(entries[pos:pos + 7])
    return audit


def test_a_log_that_extends_the_remembered_checkpoint_verifies() -> None:
    """Remembered size 10 (a size the log no longer serves a checkpoint for) in a log of 24: OK,
    and the report counts only the served checkpoints."""
    log = Log(24)
    report = _audit(log, [log.note(16), log.note(24)], log.note(10)).finish()
    assert report.remembered_size == 10 and report.checkpoints == 2 and report.entries == 24
    assert report.latest_note == log.note(24)  # (notes here are deterministic: Ed25519, fixed time)
    assert "consistent with the checkpoint at size 10 verified before" in report.summary()
    same = _audit(log, [log.note(10), log.note(24)], log.note(10)).finish()
    assert same.checkpoints == 2


def test_a_rewritten_and_resigned_history_is_caught() -> None:
    """Every served checkpoint verifies over the served entries, but the remembered root does not."""
    log = Log(24)
    remembered = log.note(10)
    other = _rewritten(log, 24)
    assert _audit(other, [other.note(24)], other.note(24)).finish().entries == 24  # verifies on its own
    with pytest.raises(InconsistentCheckpointError, match="history was rewritten") as e:
        _audit(other, [other.note(24)], remembered)
    assert e.value.index == 0


def test_a_rolled_back_log_is_caught() -> None:
    """The log now ends below the remembered size."""
    log = Log(24)
    with pytest.raises(InconsistentCheckpointError, match="truncated or rolled back"):
        LogAudit(trusted_keys(log.published()), ORIGIN, [log.note(12)], remembered=log.note(20))


def test_two_views_at_one_size_are_caught() -> None:
    """A served checkpoint of the remembered size with another root."""
    log = Log(24)
    other = _rewritten(log, 24)
    with pytest.raises(InconsistentCheckpointError, match="two views"):
        LogAudit(trusted_keys(log.published()), ORIGIN, [other.note(10), other.note(24)], remembered=log.note(10))


def test_a_remembered_note_that_does_not_verify_is_refused() -> None:
    """Signed by a key the log does not publish, or edited: refused, naming the remembered checkpoint."""
    log = Log(24)
    stranger = log.note(10, key=Ed25519Signer.generate("sealtrail.example/ledger"))
    with pytest.raises(VerificationError, match="remembered"):
        LogAudit(trusted_keys(log.published()), ORIGIN, [log.note(24)], remembered=stranger)
    edited = log.note(10).replace("\n10\n", "\n11\n")
    with pytest.raises(VerificationError, match="remembered"):
        LogAudit(trusted_keys(log.published()), ORIGIN, [log.note(24)], remembered=edited)


def _bundle(log: Log, out: Path, sizes: list[int]) -> Path:
    writer = BundleWriter(out)
    writer.write_header(BundleMeta("acme", ORIGIN, sizes[-1], "2026-12-03T00:00:00Z"), log.published(),
                        [log.note(s) for s in sizes])
    writer.write_entries(log.audit_entries()[:sizes[-1]])
    writer.close()
    return out


def _verify(bundle: Path, state: Path) -> tuple[int, str, str]:
    cli._register()
    result = CliRunner().invoke(cli.app, ["verify", "bundle", str(bundle), "--state", str(state)])
    return result.exit_code, result.stdout, result.stderr


def test_verify_state_file_is_created_advanced_and_enforced(tmp_path: Path) -> None:
    """First run: the state file is created with the latest checkpoint. A grown log advances it; the
    same log leaves it; a rewritten or rolled-back log fails with one line and leaves it as it was."""
    log, state = Log(24), tmp_path / "acme.checkpoint"
    code, out, err = _verify(_bundle(log, tmp_path / "b12", [6, 12]), state)
    assert code == 0, err
    assert out.endswith(f"; checkpoint at size 12 remembered in {state}\n")
    assert state.read_text() == audit_bundle(tmp_path / "b12").latest_note

    code, out, err = _verify(_bundle(log, tmp_path / "b24", [12, 24]), state)
    assert code == 0, err
    assert "consistent with the checkpoint at size 12 verified before" in out
    assert out.endswith(f"; checkpoint at size 24 remembered in {state}\n")
    kept = state.read_text()
    code, out, err = _verify(tmp_path / "b24", state)
    assert code == 0 and out.endswith(f"; {state} unchanged\n"), err

    for bad, reason in ((_bundle(_rewritten(log, 30), tmp_path / "rewritten", [30]), "history was rewritten"),
                        (tmp_path / "b12", "truncated or rolled back")):
        code, out, err = _verify(bad, state)
        assert code == 1 and out == "" and reason in err and err.count("\n") == 1
        assert state.read_text() == kept
