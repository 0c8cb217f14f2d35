"""The log side's witness configuration and answer readers (sealtrail.core.witnessing)."""

from __future__ import annotations

import pytest

from sealtrail.core.cosignature import CosignatureSigner
from sealtrail.core.witnessing import backoff_seconds, parse_witness_config, read_cosignature, read_size
from sealtrail.errors import InvalidInputError, SignatureError
from tests.support.witnesslog import WitnessedLog

W1, W2 = CosignatureSigner.generate("witness.example/w1"), CosignatureSigner.generate("witness.example/w2")


def _table(name: str, signer: CosignatureSigner, url: str = "http://127.0.0.1:7380") -> str:
    return f'[[witness]]\nname = "{name}"\nvkey = "{signer.verifier().vkey()}"\nurl = "{url}"\n'


def test_config_is_read_with_a_default_quorum_of_all() -> None:
    """Witnesses in order; the quorum defaults to every witness; a trailing slash is dropped."""
    config = parse_witness_config(_table("a", W1, "https://w.example/w1/") + _table("b", W2), source="w.toml")
    assert [w.name for w in config.witnesses] == ["a", "b"] and config.quorum == 2
    assert config.witnesses[0].url == "https://w.example/w1"
    assert parse_witness_config("quorum = 1\n" + _table("a", W1) + _table("b", W2), source="w.toml").quorum == 1
    assert config.retry_max_s == 60.0
    assert parse_witness_config("retry_max_s = 2\n" + _table("a", W1), source="w.toml").retry_max_s == 2.0


@pytest.mark.parametrize(("text", "where"), [
    ("quorum = 3\n" + _table("a", W1) + _table("b", W2), "quorum"),
    ("quorum = 0\n" + _table("a", W1), "quorum"),
    ("retry_max_s = 0.1\n" + _table("a", W1), "retry_max_s"),
    ("retry_max_s = true\n" + _table("a", W1), "retry_max_s"),
    (_table("a", W1) + _table("a", W2), "twice"),
    (_table("a", W1).replace("http://", "ftp://"), "witness[0].url"),
    (_table("a", W1).replace(W1.verifier().vkey(), "nope"), "witness[0].vkey"),
    (_table("a", W1) + "colour = 1\n", "witness[0].colour"),
    ("", "at least one"),
    ("[[witness]\n", "not valid TOML"),
])
def test_bad_configs_name_the_field(text: str, where: str) -> None:
    """Each refusal names the file and the field."""
    with pytest.raises(InvalidInputError) as info:
        parse_witness_config(text, source="w.toml")
    assert "w.toml" in str(info.value) and where in str(info.value)


def test_answers_are_checked() -> None:
    """A 200 body must hold the witness's valid cosignature; a 409 body one size line."""
    log = WitnessedLog(5)
    note = log.signed(5)
    line = W1.at(1_765_000_000).sign(log.checkpoint(5).body().encode())
    from sealtrail.core.note import NoteSignature

    good = NoteSignature(W1.name, W1.key_id, line).line().encode()
    assert read_cosignature(note, good, W1.verifier()).signature == line
    with pytest.raises(SignatureError):
        read_cosignature(note, good, W2.verifier())
    with pytest.raises(SignatureError):
        read_cosignature(log.signed(4), good, W1.verifier())
    with pytest.raises(SignatureError):
        read_cosignature(note, b"garbage", W1.verifier())
    assert read_size(b"42\n") == 42
    for bad in (b"42", b"042\n", b"x\n", b"\xff\n"):
        with pytest.raises(InvalidInputError):
            read_size(bad)
    assert [backoff_seconds(n) for n in (0, 1, 2, 20)] == [0.5, 1.0, 2.0, 60.0]
