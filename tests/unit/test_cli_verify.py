"""``sealtrail verify proof``: exit codes and one-line output."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from sealtrail import cli
from sealtrail.core.cosignature import CosignatureSigner
from tests.unit.logbuilder import SmallLog

LOG = SmallLog(12)


def _invoke(tmp_path: Path, entry: bytes, vkeys: list[str], *extra: str) -> tuple[int, str, str]:
    proof = tmp_path / "entry-5.tlog-proof"
    proof.write_text(LOG.proof_file(5), encoding="utf-8")
    entry_file = tmp_path / "entry-5.json"
    entry_file.write_bytes(entry)
    args = ["verify", "proof", str(proof), "--entry", str(entry_file)]
    for vkey in vkeys:
        args += ["--vkey", vkey]
    args += extra
    cli._register()
    result = CliRunner().invoke(cli.app, args)
    return result.exit_code, result.stdout, result.stderr


def test_good_proof_exits_zero_with_one_line(tmp_path: Path) -> None:
    """A proof that verifies exits 0 and prints one line naming the entry, log and size."""
    code, out, err = _invoke(tmp_path, LOG.entries[5], LOG.vkeys())
    assert code == 0, err
    assert out.count("\n") == 1 and out.startswith(
        "OK: entry 5 is in sealtrail.example/t/acme at tree size 12"
    )
    assert "2023-11-14T22:13:20Z" in out


def test_tampered_entry_exits_one_with_a_reason(tmp_path: Path) -> None:
    """An edited entry exits 1 with a one-line reason on stderr and nothing on stdout."""
    code, out, err = _invoke(tmp_path, LOG.entries[5].replace(b"search", b"delete"), LOG.vkeys())
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and err.startswith("verification failed: inclusion proof")


def test_trailing_newline_is_pointed_out(tmp_path: Path) -> None:
    """An entry file with an added newline fails, and the reason says why that matters."""
    code, _, err = _invoke(tmp_path, LOG.entries[5] + b"\n", LOG.vkeys())
    assert code == 1 and err.count("\n") == 1 and "ends with a newline" in err


def test_untrusted_key_and_bad_vkey_exit_one(tmp_path: Path) -> None:
    """A proof signed by other keys, or a malformed --vkey, exits 1 with one line."""
    stranger = CosignatureSigner.generate("someone.example").verifier().vkey()
    code, _, err = _invoke(tmp_path, LOG.entries[5], [LOG.vkeys()[0], stranger])
    assert code == 1 and err.count("\n") == 1 and "cosignature" in err
    code, _, err = _invoke(tmp_path, LOG.entries[5], ["not-a-vkey"])
    assert code == 1 and err.count("\n") == 1


def test_missing_file_exits_one(tmp_path: Path) -> None:
    """An unreadable proof file exits 1 with one line."""
    cli._register()
    result = CliRunner().invoke(
        cli.app, ["verify", "proof", str(tmp_path / "nope"), "--entry", str(tmp_path), "--vkey", "x+1+AA"]
    )
    assert result.exit_code == 1 and result.stderr.count("\n") == 1


def test_origin_pins_the_log(tmp_path: Path) -> None:
    """--origin accepts a proof under its own log's checkpoint and refuses one of another log,
    naming both origins, even though the same trusted keys signed it."""
    code, out, err = _invoke(tmp_path, LOG.entries[5], LOG.vkeys(), "--origin", "sealtrail.example/t/acme")
    assert code == 0, err
    assert out.startswith("OK: entry 5 is in sealtrail.example/t/acme")
    code, out, err = _invoke(tmp_path, LOG.entries[5], LOG.vkeys(), "--origin", "sealtrail.example/t/other")
    assert code == 1 and out == ""
    assert err.count("\n") == 1
    assert "'sealtrail.example/t/acme'" in err and "'sealtrail.example/t/other'" in err
