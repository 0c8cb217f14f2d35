"""``sealtrail verify --witness VKEY --quorum K``: a checkpoint counts only with K valid witness
cosignatures (sealtrail.core.quorum), on bundles, proof files and with --state."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from sealtrail import cli
from sealtrail.audit.bundle import BundleMeta, BundleWriter
from sealtrail.core.cosignature import CosignatureSigner
from sealtrail.core.note import add_signatures
from sealtrail.core.quorum import QuorumError, WitnessPolicy
from sealtrail.errors import InvalidInputError, SignatureError
from tests.unit.logbuilder import SmallLog
from tests.unit.test_audit import ORIGIN, Log
from tests.unit.test_audit_remembered import _rewritten

T = 1_765_000_000
W1, W2, W3 = (CosignatureSigner.generate(f"witness.example/w{n}") for n in (1, 2, 3))


def _vkeys(*ws: CosignatureSigner) -> list[str]:
    return [w.verifier().vkey() for w in ws]


def _witnessed(note: str, *ws: CosignatureSigner) -> str:
    return add_signatures(note, [w.at(T) for w in ws])


def test_policy_counts_distinct_valid_witnesses() -> None:
    """Unknown keys are ignored, a witness counts once, the quorum must be met."""
    note = SmallLog(5).signed()
    policy = WitnessPolicy.from_vkeys(_vkeys(W1, W2, W3), 2)
    assert policy.check(_witnessed(note, W1, W3, CosignatureSigner.generate("other"))).names == (
        "witness.example/w1", "witness.example/w3")
    with pytest.raises(QuorumError, match=r"tree size 5 carries 1 of the 2 .*only witness.example/w1"):
        policy.check(_witnessed(note, W1, W1.at(T + 1).cosigner))
    with pytest.raises(QuorumError, match="0 of the 2"):
        policy.check(note)


def test_a_bad_line_from_a_given_witness_rejects_the_note() -> None:
    """A cosignature line under a given witness's name and key ID that does not verify is an error."""
    log = SmallLog(5)
    forged = _witnessed(log.signed(3), W1)  # W1's line over another checkpoint
    line = forged.splitlines()[-1] + "\n"
    with pytest.raises(SignatureError, match="w1"):
        WitnessPolicy.from_vkeys(_vkeys(W1)).check(log.signed() + line)


def test_policy_refuses_bad_settings() -> None:
    """Quorum above the witnesses given, a repeated key, a log key in place of a witness key."""
    with pytest.raises(InvalidInputError, match="quorum 3"):
        WitnessPolicy.from_vkeys(_vkeys(W1, W2), 3)
    with pytest.raises(InvalidInputError, match="twice"):
        WitnessPolicy.from_vkeys(_vkeys(W1, W1), 1)
    with pytest.raises(InvalidInputError, match="witness key 1"):
        WitnessPolicy.from_vkeys([SmallLog(1).log_key.verifier().vkey()], 1)


def _bundle(out: Path, log: Log, notes: list[str]) -> Path:
    writer = BundleWriter(out)
    size = int(notes[-1].split("\n")[1])
    writer.write_header(BundleMeta("acme", ORIGIN, size, "2026-12-07T00:00:00Z"), log.published(), notes)
    writer.write_entries(log.audit_entries()[:size])
    writer.close()
    return out


def _verify(*args: str) -> tuple[int, str, str]:
    cli._register()
    result = CliRunner().invoke(cli.app, ["verify", *args])
    return result.exit_code, result.stdout, result.stderr


def _witness_args(*ws: CosignatureSigner, quorum: int) -> list[str]:
    return [a for v in _vkeys(*ws) for a in ("--witness", v)] + ["--quorum", str(quorum)]


def test_bundle_verifies_only_with_a_witnessed_latest_checkpoint(tmp_path: Path) -> None:
    """Quorum 2 of 3: two witnesses on the latest checkpoint pass, one fails naming its size."""
    log = Log(24)
    good = _bundle(tmp_path / "good", log, [log.note(12), _witnessed(log.note(24), W1, W3)])
    code, out, err = _verify("bundle", str(good), *_witness_args(W1, W2, W3, quorum=2))
    assert code == 0, err
    assert "latest checkpoint cosigned by witnesses witness.example/w1, witness.example/w3" in out
    weak = _bundle(tmp_path / "weak", log, [_witnessed(log.note(12), W1, W2), _witnessed(log.note(24), W2)])
    code, out, err = _verify("bundle", str(weak), *_witness_args(W1, W2, W3, quorum=2))
    assert code == 1 and "checkpoint at tree size 24 carries 1 of the 2 witness cosignatures" in err
    code, _, err = _verify("bundle", str(weak), "--quorum", "1")
    assert code == 1 and "--quorum needs the witnesses' keys" in err


def test_state_keeps_the_witnessed_checkpoint_and_reports_a_split_view(tmp_path: Path) -> None:
    """The witnessed checkpoint is remembered; a later view with another root at its size, or a history
    that does not extend it, fails even when its own checkpoints carry the quorum."""
    log, state = Log(24), tmp_path / "state"
    args = _witness_args(W1, W2, quorum=2)
    code, out, err = _verify("bundle", str(_bundle(tmp_path / "b12", log, [_witnessed(log.note(12), W1, W2)])),
                             "--state", str(state), *args)
    assert code == 0 and "remembered" in out, err
    other = _rewritten(log, 24)
    split = _bundle(tmp_path / "split", other, [_witnessed(other.note(12), W1, W2)])
    code, _, err = _verify("bundle", str(split), "--state", str(state), *args)
    assert code == 1 and "split view" in err and "tree size 12" in err
    forked = _bundle(tmp_path / "forked", other, [_witnessed(other.note(24), W1, W2)])
    code, _, err = _verify("bundle", str(forked), "--state", str(state), *args)
    assert code == 1 and "history was rewritten" in err


def test_proof_file_needs_the_quorum(tmp_path: Path) -> None:
    """verify proof --witness: the proof's checkpoint must carry the quorum."""
    log = SmallLog(9)
    entry = tmp_path / "entry"
    entry.write_bytes(log.entries[4])
    keys = [a for v in log.vkeys() for a in ("--vkey", v)]
    good = tmp_path / "good.tlog-proof"
    good.write_text(log.proof_file(4).replace(log.signed(), _witnessed(log.signed(), W1, W2)))
    code, out, err = _verify("proof", str(good), "--entry", str(entry), *keys, *_witness_args(W1, W2, quorum=2))
    assert code == 0 and "witnessed by witness.example/w1, witness.example/w2" in out, err
    plain = tmp_path / "plain.tlog-proof"
    plain.write_text(log.proof_file(4))
    code, _, err = _verify("proof", str(plain), "--entry", str(entry), *keys, *_witness_args(W1, W2, quorum=1))
    assert code == 1 and "0 of the 1 witness cosignatures" in err
