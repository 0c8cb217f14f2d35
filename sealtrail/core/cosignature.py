"""Timestamped Ed25519 cosignatures (c2sp.org/tlog-cosignature, note signature type 0x04).

The signed message is::

    cosignature/v1
    time <POSIX seconds, ASCII decimal, no leading zeroes>
    <the whole cosigned note text, final newline included>

The note signature bytes are ``key ID (4) || timestamp (8, big-endian) || Ed25519 signature (64)``;
the 4-byte key ID is added by the note layer, so :meth:`CosignatureSigner.sign` returns the last
72 bytes. ``key ID = SHA-256(name || 0x0A || 0x04 || public key)[:4]``. The timestamp MUST NOT
exceed 2**63 - 1. The Ed25519 message does not commit to the cosigner's name, so one public key
MUST NOT be used under two cosigner names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from sealtrail.core.note import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
    NoteSignature,
)
from sealtrail.errors import NoteError, SignatureError

COSIGNATURE_TYPE = 0x04
MAX_TIMESTAMP = 2**63 - 1
SIGNATURE_SIZE = 8 + 64


def cosigned_message(text: bytes, timestamp: int) -> bytes:
    """Return the bytes a v1 cosignature signs for note ``text`` at ``timestamp``."""
    if not 0 <= timestamp <= MAX_TIMESTAMP:
        raise NoteError("cosignature timestamp out of range")
    return b"cosignature/v1\ntime %d\n" % timestamp + text


def signature_timestamp(signature: bytes) -> int:
    """Return the timestamp of a type 0x04 signature (the bytes after the key ID)."""
    if len(signature) != SIGNATURE_SIZE:
        raise NoteError("cosignature must be 72 bytes after the key ID")
    timestamp = int.from_bytes(signature[:8], "big")
    if timestamp > MAX_TIMESTAMP:
        raise NoteError("cosignature timestamp out of range")
    return timestamp


@dataclass(frozen=True)
class CosignatureVerifier(Ed25519PublicKey):
    """Verifier for type 0x04 cosignatures by one cosigner key."""

    SIG_TYPE: ClassVar[int] = COSIGNATURE_TYPE

    def verify(self, text: bytes, signature: bytes) -> bool:
        """Return whether ``signature`` (timestamp || Ed25519) cosigns note ``text``."""
        try:
            message = cosigned_message(text, signature_timestamp(signature))
            VerifyKey(self.public_key).verify(message, signature[8:])
        except (NoteError, BadSignatureError, ValueError):
            return False
        return True


@dataclass(frozen=True, repr=False)
class CosignatureSigner(Ed25519PrivateKey):
    """A cosigner key (type 0x04). ``seed`` is the 32-byte Ed25519 private key; the signing time is
    passed in."""

    SIG_TYPE: ClassVar[int] = COSIGNATURE_TYPE

    def sign_at(self, text: bytes, timestamp: int) -> bytes:
        """Return ``timestamp (8) || Ed25519 signature`` cosigning note ``text`` at ``timestamp``."""
        message = cosigned_message(text, timestamp)
        return timestamp.to_bytes(8, "big") + bytes(SigningKey(self.seed).sign(message).signature)

    def at(self, timestamp: int) -> TimedCosigner:
        """Return a note :class:`~sealtrail.core.note.Signer` that cosigns at ``timestamp``."""
        return TimedCosigner(self, timestamp)

    def verifier(self) -> CosignatureVerifier:
        """Return the matching verifier."""
        return CosignatureVerifier(self.name, self.public_key)


@dataclass(frozen=True)
class TimedCosigner:
    """A cosigner bound to one signing time, usable wherever a note signer is."""

    cosigner: CosignatureSigner
    timestamp: int

    @property
    def name(self) -> str:
        """The cosigner's key name."""
        return self.cosigner.name

    @property
    def key_id(self) -> int:
        """The cosigner's key ID."""
        return self.cosigner.key_id

    def sign(self, text: bytes) -> bytes:
        """Cosign ``text`` at the bound time."""
        return self.cosigner.sign_at(text, self.timestamp)


def verify_cosignature(text: bytes, sig: NoteSignature, verifier: CosignatureVerifier) -> int:
    """Check one cosignature line against ``verifier`` and return its timestamp.

    Raises :class:`SignatureError` if the line is from another key or does not verify.
    """
    if (sig.name, sig.key_id) != (verifier.name, verifier.key_id):
        raise SignatureError(f"cosignature by {sig.name} is not from {verifier.name}")
    if not verifier.verify(text, sig.signature):
        raise SignatureError(f"cosignature by {sig.name} does not verify")
    return signature_timestamp(sig.signature)
