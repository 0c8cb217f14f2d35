"""c2sp.org/tlog-cosignature type 0x04: message layout, key IDs, timestamps, tampering."""

from __future__ import annotations

import base64
import hashlib

import pytest
from nacl.signing import VerifyKey

from sealtrail.core import note
from sealtrail.core.checkpoint import format_checkpoint
from sealtrail.core.cosignature import (
    COSIGNATURE_TYPE,
    CosignatureSigner,
    CosignatureVerifier,
    cosigned_message,
    signature_timestamp,
    verify_cosignature,
)
from sealtrail.errors import NoteError, SignatureError

BODY = format_checkpoint("log.example/a", 20852163, bytes(range(32)))
# Published in transparency-dev/formats note tests (Apache-2.0): a native type 0x04 vkey, and a
# cosignature line's base64 whose timestamp is 1727964367.
FOREIGN_COSIGNER_VKEY = "remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2"
FOREIGN_COSIGNATURE = (
    "ZGhGuQAAAABm/qTPeyKXD+R2rzyQsxPiP8mXum7qq/iF0u4vanlqJyocWODBt97w9uL+8qT7S5gxEHWWOworDcFiEBYJXORmnFBOBA=="
)


def test_signed_message_layout() -> None:
    """The message is 'cosignature/v1', 'time <t>', then the whole checkpoint body."""
    assert cosigned_message(BODY.encode(), 1679315147) == (
        b"cosignature/v1\ntime 1679315147\n" + BODY.encode()
    )


def test_signature_bytes_are_timestamp_then_ed25519() -> None:
    """The bytes after the key ID are an 8-byte big-endian time and an Ed25519 signature of the message."""
    cosigner = CosignatureSigner.generate("witness.example/w1")
    sig = cosigner.sign_at(BODY.encode(), 1679315147)
    assert len(sig) == 72 and int.from_bytes(sig[:8], "big") == 1679315147
    VerifyKey(cosigner.public_key).verify(cosigned_message(BODY.encode(), 1679315147), sig[8:])


def test_key_id_uses_type_0x04() -> None:
    """The key ID is SHA-256(name || 0x0A || 0x04 || key)[:4], unlike the same key as type 0x01."""
    cosigner = CosignatureSigner.generate("witness.example/w1")
    digest = hashlib.sha256(b"witness.example/w1\n\x04" + cosigner.public_key).digest()
    assert cosigner.key_id == int.from_bytes(digest[:4], "big")
    assert cosigner.key_id != note.Ed25519Signer(cosigner.name, cosigner.seed).key_id
    assert base64.b64decode(cosigner.verifier().vkey().split("+", 2)[2])[0] == 0x04


def test_foreign_vectors() -> None:
    """A type 0x04 vkey and a cosignature timestamp written by another implementation read back."""
    verifier = CosignatureVerifier.from_vkey(FOREIGN_COSIGNER_VKEY)
    assert (verifier.name, verifier.key_id) == ("remora.n621.de", 0xDA77ADE7)
    assert verifier.vkey() == FOREIGN_COSIGNER_VKEY
    assert signature_timestamp(base64.b64decode(FOREIGN_COSIGNATURE)[4:]) == 1727964367
    with pytest.raises(NoteError):
        note.Ed25519Verifier.from_vkey(FOREIGN_COSIGNER_VKEY)


def test_cosigned_note_round_trip() -> None:
    """A log-signed checkpoint with an added cosignature opens, and the cosignature gives its time."""
    log = note.Ed25519Signer.generate("log.example/a")
    cosigner = CosignatureSigner.generate("log.example/a/clock")
    signed = note.add_signatures(note.sign_note(BODY, [log]), [cosigner.at(1700000000)])
    opened = note.open_note(signed, [log.verifier(), cosigner.verifier()])
    assert len(opened.verified) == 2
    assert verify_cosignature(BODY.encode(), opened.verified[1], cosigner.verifier()) == 1700000000
    with pytest.raises(SignatureError):
        verify_cosignature(BODY.encode(), opened.verified[0], cosigner.verifier())


def test_tampered_cosignatures_fail() -> None:
    """Changing the time, the body, or reading it as a plain Ed25519 key makes it fail."""
    cosigner = CosignatureSigner.generate("w.example")
    verifier = cosigner.verifier()
    sig = cosigner.sign_at(BODY.encode(), 1700000000)
    assert verifier.verify(BODY.encode(), sig)
    later = (1700000001).to_bytes(8, "big") + sig[8:]
    assert not verifier.verify(BODY.encode(), later)
    assert not verifier.verify(BODY.replace("20852163", "20852164").encode(), sig)
    assert not verifier.verify(BODY.encode(), sig[:-1])
    assert not verifier.verify(BODY.encode(), (2**63).to_bytes(8, "big") + sig[8:])
    assert not note.Ed25519Verifier(cosigner.name, cosigner.public_key).verify(BODY.encode(), sig)


def test_key_strings_and_limits() -> None:
    """Cosigner private keys round-trip with type 0x04; out-of-range times are refused."""
    cosigner = CosignatureSigner.generate("w.example")
    again = CosignatureSigner.from_private_key(cosigner.private_key())
    assert again.public_key == cosigner.public_key and again.key_id == cosigner.key_id
    assert note.decode_private_key(cosigner.private_key()).sig_type == COSIGNATURE_TYPE
    with pytest.raises(NoteError):
        note.Ed25519Signer.from_private_key(cosigner.private_key())
    with pytest.raises(NoteError):
        cosigner.sign_at(BODY.encode(), -1)
    with pytest.raises(NoteError):
        cosigner.sign_at(BODY.encode(), 2**63)
