"""Ingest receipts: signed notes anyone with the vkey can check; tampering is detected."""

from __future__ import annotations

import pytest

from sealtrail.core.note import Ed25519Signer, Ed25519Verifier
from sealtrail.core.receipt import (
    CachedEd25519Signer,
    Receipt,
    parse_receipt_text,
    sign_receipt,
    verify_receipt,
)
from sealtrail.errors import NoteError, SignatureError

RECEIPT = Receipt("0190f0e8-1234-7abc-8def-0123456789ab", "acme", "blake3:" + "ab" * 32, 1700000000123)


def test_round_trip_with_the_published_vkey() -> None:
    """A receipt verifies with the signer's vkey string and gives back exactly what was promised."""
    signer = Ed25519Signer.generate("sealtrail-ingest")
    note = sign_receipt(RECEIPT, CachedEd25519Signer(signer))
    assert note.startswith("sealtrail.dev/receipt/v1\nevent 0190f0e8-")
    assert verify_receipt(note, [Ed25519Verifier.from_vkey(signer.verifier().vkey())]) == RECEIPT


def test_cached_signer_signs_identically() -> None:
    """The cached signer is the same key: identical signatures to the core signer."""
    signer = Ed25519Signer.generate("k")
    assert sign_receipt(RECEIPT, signer) == sign_receipt(RECEIPT, CachedEd25519Signer(signer))
    assert CachedEd25519Signer(signer).vkey() == signer.verifier().vkey()
    assert "seed" not in repr(CachedEd25519Signer(signer))


def test_tampering_and_foreign_keys_fail() -> None:
    """A changed digest, or a note from another key of the same name, does not verify."""
    signer = Ed25519Signer.generate("sealtrail-ingest")
    note = sign_receipt(RECEIPT, signer)
    with pytest.raises(SignatureError):
        verify_receipt(note.replace("digest blake3:ab", "digest blake3:ac"), [signer.verifier()])
    with pytest.raises(SignatureError):
        verify_receipt(note, [Ed25519Signer.generate("sealtrail-ingest").verifier()])


@pytest.mark.parametrize("text", ["", "sealtrail.dev/receipt/v1\n", RECEIPT.text().replace("time ", "time -"),
                                  RECEIPT.text() + "extra\n", RECEIPT.text().replace("log acme", "log ACME")])
def test_only_the_exact_v1_text_parses(text: str) -> None:
    """Anything but the five-line v1 text is refused."""
    with pytest.raises(NoteError):
        parse_receipt_text(text)


def test_receipt_note_is_what_sign_note_writes() -> None:
    """sign_receipt's direct formatting gives exactly the note the core's sign_note gives."""
    from sealtrail.core.note import sign_note

    signer = Ed25519Signer.generate("sealtrail-ingest")
    assert sign_receipt(RECEIPT, signer) == sign_note(RECEIPT.text(), [signer])
