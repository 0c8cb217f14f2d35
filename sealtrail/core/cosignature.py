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

import secrets
from dataclasses import dataclass

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from sealtrail.core.note import (
    NoteSignature,
    check_key_id,
    check_key_name,
    compute_key_id,
    decode_private_key,
    decode_vkey,
    ed25519_key_bytes,
    encode_private_key,
    encode_vkey,
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
class CosignatureVerifier:
    """Verifier for type 0x04 cosignatures by one cosigner key."""

    name: str
    public_key: bytes

    @property
    def key_id(self) -> int:
        """The key's uint32 ID (type byte 0x04)."""
        return compute_key_id(self.name, COSIGNATURE_TYPE, self.public_key)

    def verify(self, text: bytes, signature: bytes) -> bool:
        """Return whether ``signature`` (timestamp || Ed25519) cosigns note ``text``."""
        try:
            message = cosigned_message(text, signature_timestamp(signature))
            VerifyKey(self.public_key).verify(message, signature[8:])
        except (NoteError, BadSignatureError, ValueError):
            return False
        return True

    def vkey(self) -> str:
        """Return this key's verifier key string (type byte 0x04)."""
        return encode_vkey(self.name, COSIGNATURE_TYPE, self.public_key)

    @classmethod
    def from_vkey(cls, vkey: str) -> CosignatureVerifier:
        """Parse a type 0x04 verifier key string; raises :class:`NoteError` if malformed."""
        material = decode_vkey(vkey)
        public_key = ed25519_key_bytes(material, COSIGNATURE_TYPE)
        check_key_id(material, COSIGNATURE_TYPE, public_key)
        return cls(material.name, public_key)


@dataclass(frozen=True, repr=False)
class CosignatureSigner:
    """A cosigner key. ``seed`` is the 32-byte Ed25519 private key; the signing time is passed in."""

    name: str
    seed: bytes

    def __post_init__(self) -> None:
        check_key_name(self.name)
        if len(self.seed) != 32:
            raise NoteError("Ed25519 seed must be 32 bytes")

    def __repr__(self) -> str:
        return f"CosignatureSigner(name={self.name!r})"

    @property
    def public_key(self) -> bytes:
        """The 32-byte Ed25519 public key."""
        return bytes(SigningKey(self.seed).verify_key)

    @property
    def key_id(self) -> int:
        """The key's uint32 ID (type byte 0x04)."""
        return compute_key_id(self.name, COSIGNATURE_TYPE, self.public_key)

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

    def private_key(self) -> str:
        """Return the ``PRIVATE+KEY+...`` string (type byte 0x04). It is secret: never log it."""
        return encode_private_key(self.name, COSIGNATURE_TYPE, self.seed)

    @classmethod
    def from_private_key(cls, skey: str) -> CosignatureSigner:
        """Parse a type 0x04 private key string; raises :class:`NoteError` if malformed."""
        material = decode_private_key(skey)
        signer = cls(material.name, ed25519_key_bytes(material, COSIGNATURE_TYPE))
        check_key_id(material, COSIGNATURE_TYPE, signer.public_key)
        return signer

    @classmethod
    def generate(cls, name: str) -> CosignatureSigner:
        """Return a new random cosigner key named ``name``."""
        return cls(name, secrets.token_bytes(32))


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
