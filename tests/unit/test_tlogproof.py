"""c2sp.org/tlog-proof files: exact layout, strict parsing, verification against entries."""

from __future__ import annotations

import pytest

from sealtrail.core import note, tlogproof
from sealtrail.errors import InvalidProofError, NoteError, SignatureError, VerificationError
from tests.unit.logbuilder import SmallLog

LOG = SmallLog(11)


def test_layout_follows_the_spec() -> None:
    """Header, optional extra, index, one base64 hash per line, blank line, then the note verbatim."""
    text = LOG.proof_file(6, extra=b"context")
    lines = text.split("\n")
    assert lines[0] == "c2sp.org/tlog-proof@v1"
    assert lines[1] == "extra Y29udGV4dA=="
    assert lines[2] == "index 6"
    head, _, rest = text.partition("\n\n")
    assert len(head.split("\n")) == 3 + 4  # 11 leaves: four proof hashes for index 6
    assert rest == LOG.signed(11)


def test_round_trip() -> None:
    """Formatting then parsing gives back the same proof, with and without extra data."""
    for extra in (None, b"\x00\x01"):
        text = LOG.proof_file(3, extra=extra)
        parsed = tlogproof.parse_proof(text)
        assert parsed.extra == extra and parsed.index == 3
        assert parsed.format() == text
        assert parsed.checkpoint() == LOG.checkpoint()


def test_single_entry_log_has_no_proof_lines() -> None:
    """In a one-entry tree the proof is empty, so the index line is followed by the blank line."""
    one = SmallLog(1)
    text = one.proof_file(0)
    assert text.startswith("c2sp.org/tlog-proof@v1\nindex 0\n\n")
    assert tlogproof.verify_proof(text, one.entries[0], [one.log_key.verifier()]) == one.checkpoint()


def test_verify_against_entry_and_keys() -> None:
    """The right entry verifies; another entry, an unknown key or a wrong origin does not."""
    text = LOG.proof_file(4)
    verifiers = [LOG.log_key.verifier()]
    assert tlogproof.verify_proof(text, LOG.entries[4], verifiers, origin=LOG.origin).size == 11
    with pytest.raises(InvalidProofError):
        tlogproof.verify_proof(text, LOG.entries[5], verifiers)
    with pytest.raises(SignatureError):
        tlogproof.verify_proof(text, LOG.entries[4], [note.Ed25519Signer.generate(LOG.origin).verifier()])
    with pytest.raises(VerificationError):
        tlogproof.verify_proof(text, LOG.entries[4], verifiers, origin="other.example/log")


def test_edited_index_or_hash_fails() -> None:
    """Changing the index or one proof hash makes verification fail."""
    text = LOG.proof_file(4)
    with pytest.raises(InvalidProofError):
        tlogproof.verify_proof(text.replace("index 4", "index 5"), LOG.entries[4], [LOG.log_key.verifier()])
    proof = tlogproof.parse_proof(text)
    bad = tlogproof.TlogProof(proof.index, (bytes(32), *proof.proof[1:]), proof.note)
    with pytest.raises(InvalidProofError):
        tlogproof.verify_proof(bad, LOG.entries[4], [LOG.log_key.verifier()])


GOOD = LOG.proof_file(2)


@pytest.mark.parametrize(
    "text",
    [
        GOOD.replace("tlog-proof@v1", "tlog-proof@v2"),
        GOOD.replace("index 2", "index 02"),
        GOOD.replace("index 2", "index  2"),
        GOOD.replace("index 2", "idx 2"),
        GOOD.replace("index 2\n", ""),
        GOOD.replace("index 2", "extra AA==\nindex 2").replace("v1\n", "v1\nextra AA==\n", 1),
        GOOD.replace("index 2", "extra \nindex 2"),
        GOOD.replace("index 2", "extra !!\nindex 2"),
        GOOD.replace("\n\n", "\n", 1),
        GOOD.replace("\n\n", "\n\n\n", 1),
        GOOD.replace("\n", "\r\n", 1),
        GOOD[: GOOD.index("\n\n")] + "\nAAAA\n\n" + GOOD.partition("\n\n")[2],
        GOOD.partition("\n\n")[0] + "\n\n" + LOG.checkpoint().body(),
        GOOD[:-1],
        GOOD.encode("utf-8") + b"\xff",
    ],
)
def test_malformed_files_are_refused(text: str | bytes) -> None:
    """Wrong header, bad index, bad or empty extra, missing or doubled blank line, short hashes,
    an unsigned or truncated checkpoint and invalid UTF-8 all raise NoteError."""
    with pytest.raises(NoteError):
        tlogproof.parse_proof(text)
