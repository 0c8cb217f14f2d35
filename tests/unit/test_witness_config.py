"""The witness's logs file and key file: bad input is refused naming the table and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from sealtrail.core.cosignature import CosignatureSigner
from sealtrail.errors import InvalidInputError, ServiceStartError
from services.witness.config import load_key, parse_logs, write_key
from tests.support.witnesslog import WitnessedLog


def test_logs_file_is_read() -> None:
    """Each [[log]] table gives an origin and its vkeys."""
    a, b = WitnessedLog(1, origin="example.org/a"), WitnessedLog(1, origin="example.org/b")
    text = "".join(f'[[log]]\norigin = "{x.origin}"\nvkeys = ["{x.vkey}"]\n' for x in (a, b))
    logs = parse_logs(text, source="logs.toml")
    assert [(c.origin, c.vkeys) for c in logs] == [(a.origin, (a.vkey,)), (b.origin, (b.vkey,))]


@pytest.mark.parametrize(("text", "where"), [
    ('[[log]]\norigin = "o"\nvkeys = ["nope"]\n', "log[0].vkeys[0]"),
    ('[[log]]\norigin = "has space"\nvkeys = []\n', "log[0].origin"),
    ('[[log]]\norigin = "o"\n', "log[0].vkeys"),
    ('[[log]]\norigin = "o"\nvkeys = ["x"]\ncolour = 1\n', "log[0].colour"),
    ('[[logs]]\norigin = "o"\n', "unknown key 'logs'"),
    ("[[log]\n", "not valid TOML"),
])
def test_bad_logs_files_name_what_is_wrong(text: str, where: str) -> None:
    """The error names the file, the table and the field."""
    with pytest.raises(InvalidInputError, match=r"logs\.toml") as info:
        parse_logs(text, source="logs.toml")
    assert where in str(info.value)


def test_a_cosigner_key_in_place_of_a_log_key_is_refused() -> None:
    """Log keys are Ed25519 note keys (type 0x01); a type 0x04 vkey is refused."""
    vkey = CosignatureSigner.generate("o").verifier().vkey()
    with pytest.raises(InvalidInputError, match="vkeys"):
        parse_logs(f'[[log]]\norigin = "o"\nvkeys = ["{vkey}"]\n', source="logs.toml")


def test_key_file_is_0600_and_never_overwritten(tmp_path: Path) -> None:
    """write_key creates a 0600 file, refuses an existing one; load_key refuses a readable one."""
    signer = CosignatureSigner.generate("witness.example/w1")
    path = tmp_path / "w.key"
    write_key(path, signer)
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_key(path).verifier() == signer.verifier()
    with pytest.raises(InvalidInputError, match="never overwritten"):
        write_key(path, CosignatureSigner.generate("other"))
    path.chmod(0o644)
    with pytest.raises(ServiceStartError, match="chmod 600"):
        load_key(path)
