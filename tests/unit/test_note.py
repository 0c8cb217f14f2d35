"""C2SP signed notes: the published example, key strings, signing, and strict parsing."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from sealtrail.core import note
from sealtrail.errors import NoteError, SignatureError

VECTORS = Path(__file__).resolve().parents[2] / ".." / "shared" / "vectors"
EXAMPLE = json.loads((VECTORS / "c2sp" / "signed-note-example.json").read_text())
# A type 0x01 vkey published in transparency-dev/formats note tests (Apache-2.0).
FOREIGN_VKEY = "TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6"


def _flip_signature_bit(signed: str, byte: int) -> str:
    text, _, line = signed.rpartition("\n\n")
    prefix, _, b64 = line.rstrip("\n").rpartition(" ")
    raw = bytearray(base64.b64decode(b64))
    raw[byte] ^= 0x01
    return f"{text}\n\n{prefix} {base64.b64encode(bytes(raw)).decode()}\n"


def test_c2sp_example_verifies() -> None:
    """The signed-note spec's example note verifies under its vkey, with the right key ID."""
    verifier = note.Ed25519Verifier.from_vkey(EXAMPLE["verifier_key"])
    assert verifier.key_id == 0x530D903A
    opened = note.open_note(EXAMPLE["signed_note"], [verifier])
    assert opened.text == "This is an example message.\n"
    assert [s.name for s in opened.verified] == ["example.com/foo"]
    assert verifier.vkey() == EXAMPLE["verifier_key"]


def test_c2sp_example_one_bit_changes_fail() -> None:
    """Flipping one bit of the text, of the signature or of the key ID makes the example fail."""
    verifier = note.Ed25519Verifier.from_vkey(EXAMPLE["verifier_key"])
    signed: str = EXAMPLE["signed_note"]
    with pytest.raises(SignatureError):
        note.open_note(signed.replace("example", "exbmple", 1), [verifier])
    with pytest.raises(SignatureError):
        note.open_note(_flip_signature_bit(signed, 4 + 10), [verifier])
    with pytest.raises(SignatureError):  # key ID no longer matches: the line is from an unknown key
        note.open_note(_flip_signature_bit(signed, 0), [verifier])


def test_foreign_vkey_parses() -> None:
    """A vkey written by another implementation parses and keeps its key ID."""
    verifier = note.Ed25519Verifier.from_vkey(FOREIGN_VKEY)
    assert (verifier.name, verifier.key_id) == ("TEST", 0x7997405C)
    assert verifier.vkey() == FOREIGN_VKEY


def test_sign_open_round_trip_with_several_keys() -> None:
    """A note signed by two keys opens with either; unknown keys' lines are kept aside, not trusted."""
    a, b = note.Ed25519Signer.generate("a.example/k"), note.Ed25519Signer.generate("b.example/k")
    signed = note.sign_note("hello\nworld\n", [a, b])
    only_a = note.open_note(signed, [a.verifier()])
    assert [s.name for s in only_a.verified] == ["a.example/k"]
    assert [s.name for s in only_a.unknown] == ["b.example/k"]
    both = note.open_note(signed, [a.verifier(), b.verifier()])
    assert len(both.verified) == 2
    with pytest.raises(SignatureError):
        note.open_note(signed, [note.Ed25519Signer.generate("c.example/k").verifier()])


def test_same_name_other_key_is_ignored() -> None:
    """A line with a known name but another key ID is ignored rather than failing the note."""
    real = note.Ed25519Signer.generate("log.example")
    impostor = note.Ed25519Signer.generate("log.example")
    signed = note.sign_note("body\n", [impostor, real])
    opened = note.open_note(signed, [real.verifier()])
    assert len(opened.verified) == 1 and len(opened.unknown) == 1


def test_known_key_with_bad_signature_rejects_the_note() -> None:
    """If a known key's line does not verify, the note is rejected even if another known key verifies."""
    a, b = note.Ed25519Signer.generate("a.example"), note.Ed25519Signer.generate("b.example")
    signed = note.sign_note("body\n", [a])
    forged = note.NoteSignature(b.name, b.key_id, bytes(64))
    with pytest.raises(SignatureError):
        note.open_note(signed + forged.line(), [a.verifier(), b.verifier()])


def test_add_signatures_keeps_existing_lines() -> None:
    """Adding a signature keeps the earlier lines in order and signs the same text."""
    a, b = note.Ed25519Signer.generate("a.example"), note.Ed25519Signer.generate("b.example")
    first = note.sign_note("text\n", [a])
    both = note.add_signatures(first, [b])
    assert both.startswith(first)
    assert len(note.open_note(both, [a.verifier(), b.verifier()]).verified) == 2


def test_key_strings_round_trip() -> None:
    """Private and verifier key strings round-trip and name the same key."""
    skey, vkey = note.generate_key("example.com/log")
    signer = note.Ed25519Signer.from_private_key(skey)
    assert skey.startswith("PRIVATE+KEY+example.com/log+")
    assert signer.verifier().vkey() == vkey
    assert note.Ed25519Verifier.from_vkey(vkey).key_id == signer.key_id
    assert "PRIVATE" not in repr(signer) and skey not in repr(signer)


@pytest.mark.parametrize(
    "vkey",
    [
        "no-plus-signs",
        "name+1234567+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6",
        "TEST+7997405d+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6",
        "TEST+zzzzzzzz+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6",
        "TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr",
        "TEST+7997405c+BAcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6",
        "TE ST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6",
        "+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6",
    ],
)
def test_bad_vkeys_are_refused(vkey: str) -> None:
    """Wrong shape, short or non-hex ID, mismatched ID, bad base64, wrong type or bad name: NoteError."""
    with pytest.raises(NoteError):
        note.Ed25519Verifier.from_vkey(vkey)


def _valid() -> str:
    return note.sign_note("line one\nline two\n", [note.Ed25519Signer.generate("k.example")])


@pytest.mark.parametrize(
    "mutate",
    [
        lambda s: s[:-1],  # no final newline
        lambda s: s.replace("\n\n", "\n"),  # no blank line
        lambda s: s.replace("— ", "- "),  # hyphen, not em dash
        lambda s: s.replace("— ", "—"),  # no space after the dash
        lambda s: s.replace("one", "o\tne"),  # control character
        lambda s: s.replace("k.example ", "k.example  "),  # empty signature field
        lambda s: s.replace("k.example ", "k+example "),  # plus in key name
        lambda s: s[:-2] + "!\n",  # not base64
        lambda s: s + "\n",  # trailing blank line
        lambda s: s.rpartition(" ")[0] + " AAAAAA==\n",  # shorter than key ID + 1 byte
        lambda s: s + "".join(s.rpartition("\n\n")[2] for _ in range(101)),  # too many signatures
    ],
)
def test_malformed_notes_are_refused(mutate: object) -> None:
    """Every malformed variant of a good note raises NoteError when parsed."""
    assert callable(mutate)
    with pytest.raises(NoteError):
        note.parse_note(mutate(_valid()))


def test_non_canonical_base64_is_refused() -> None:
    """A signature whose base64 sets padding bits (same bytes, other text) is refused."""
    signed: str = EXAMPLE["signed_note"]
    assert signed.endswith("IneyaQM=\n")
    with pytest.raises(NoteError):
        note.parse_note(signed.replace("IneyaQM=\n", "IneyaQN=\n"))


def test_invalid_utf8_is_refused() -> None:
    """Bytes that are not UTF-8 are not a note."""
    with pytest.raises(NoteError):
        note.parse_note(b"\xff\xfe\n\n\xe2\x80\x94 a AAAAAAA=\n")


def test_signing_needs_valid_text_and_names() -> None:
    """Text without a final newline, text with control characters and bad key names cannot be signed."""
    signer = note.Ed25519Signer.generate("k.example")
    with pytest.raises(NoteError):
        note.sign_note("no newline", [signer])
    with pytest.raises(NoteError):
        note.sign_note("tab\there\n", [signer])
    with pytest.raises(NoteError):
        note.Ed25519Signer.generate("bad name")
    with pytest.raises(NoteError):
        note.sign_note("text\n", [])
