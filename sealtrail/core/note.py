"""C2SP signed notes (c2sp.org/signed-note) with Ed25519 keys (signature type 0x01).

A note is UTF-8 text ending in a newline, a blank line, then one or more signature lines
``— <key name> base64(key ID || signature)``. A key is named by ``(name, key ID)`` with
``key ID = SHA-256(name || 0x0A || type || public key)[:4]`` read as a big-endian uint32.

Key strings (as golang.org/x/mod/sumdb/note writes them):

* verifier key (``vkey``): ``<name>+<8 hex key ID>+base64(type || public key)``
* private key: ``PRIVATE+KEY+<name>+<8 hex key ID>+base64(type || 32-byte seed)``

Verification MUST ignore signature lines from unknown keys, MUST reject the note when a line
from a known key does not verify, and MUST reject it when no known key signed it. Everything
malformed raises :class:`NoteError`; signature failures raise :class:`SignatureError`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import ClassVar, Protocol, Self

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from sealtrail.errors import NoteError, SignatureError

ED25519_TYPE = 0x01
MAX_SIGNATURES = 100
SIG_PREFIX = "— "


# --- text rules --------------------------------------------------------------------------------


def b64encode(data: bytes) -> str:
    """Standard base64 with padding (RFC 4648 §4)."""
    return base64.b64encode(data).decode("ascii")


def b64decode(text: str, what: str) -> bytes:
    """Decode canonical standard base64; anything else raises :class:`NoteError`.

    Non-canonical spellings (stray padding bits) are refused so that one byte string has exactly
    one textual form and a changed character never verifies.
    """
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error) as e:
        raise NoteError(f"{what} is not valid base64") from e
    if b64encode(data) != text:
        raise NoteError(f"{what} is not canonical base64")
    return data


def check_key_name(name: str) -> None:
    """Raise :class:`NoteError` unless ``name`` is non-empty, has no Unicode space, ``+`` or control."""
    if not name or "+" in name or any(c.isspace() or ord(c) < 0x20 or c == "\x7f" for c in name):
        raise NoteError("key name must be non-empty without spaces, '+' or control characters")


def check_text(text: str) -> None:
    """Raise :class:`NoteError` unless ``text`` is a valid note text (non-empty, ends in newline)."""
    if not text.endswith("\n"):
        raise NoteError("note text must end with a newline")
    if any(ord(c) < 0x20 and c != "\n" for c in text):
        raise NoteError("note text must not contain control characters other than newline")


def compute_key_id(name: str, sig_type: int, public_key: bytes) -> int:
    """Return ``SHA-256(name || 0x0A || type || public key)[:4]`` as a big-endian uint32."""
    digest = hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([sig_type]) + public_key).digest()
    return int.from_bytes(digest[:4], "big")


# --- keys --------------------------------------------------------------------------------------


class Verifier(Protocol):
    """Checks signatures made by one key, named by ``(name, key_id)``."""

    @property
    def name(self) -> str: ...

    @property
    def key_id(self) -> int: ...

    def verify(self, text: bytes, signature: bytes) -> bool:
        """Return whether ``signature`` (without the key ID) signs the note ``text``."""
        ...


class Signer(Protocol):
    """Signs note texts with one key, named by ``(name, key_id)``."""

    @property
    def name(self) -> str: ...

    @property
    def key_id(self) -> int: ...

    def sign(self, text: bytes) -> bytes:
        """Return the signature of the note ``text`` (without the key ID)."""
        ...


@dataclass(frozen=True)
class KeyMaterial:
    """A decoded key string: name, key ID, signature type and key bytes (public key or seed)."""

    name: str
    key_id: int
    sig_type: int
    key: bytes = field(repr=False)  # may be a private seed: never in a repr or a log line


def _decode_key_parts(name: str, hex_id: str, b64: str, what: str) -> KeyMaterial:
    check_key_name(name)
    if len(hex_id) != 8 or any(c not in "0123456789abcdefABCDEF" for c in hex_id):
        raise NoteError(f"{what} key ID must be 8 hex digits")
    raw = b64decode(b64, f"{what} key")
    if len(raw) < 2:
        raise NoteError(f"{what} key is too short")
    return KeyMaterial(name, int(hex_id, 16), raw[0], raw[1:])


def decode_vkey(vkey: str) -> KeyMaterial:
    """Split a verifier key string; the key ID is checked by the type-specific constructor."""
    parts = vkey.split("+", 2)
    if len(parts) != 3:
        raise NoteError("verifier key must look like name+hexid+base64")
    return _decode_key_parts(parts[0], parts[1], parts[2], what="verifier")


def decode_private_key(skey: str) -> KeyMaterial:
    """Split a ``PRIVATE+KEY+...`` string; ``key`` is the seed."""
    parts = skey.split("+", 4)
    if len(parts) != 5 or parts[0] != "PRIVATE" or parts[1] != "KEY":
        raise NoteError("private key must look like PRIVATE+KEY+name+hexid+base64")
    return _decode_key_parts(parts[2], parts[3], parts[4], what="private")


def encode_vkey(name: str, sig_type: int, public_key: bytes) -> str:
    """Return the verifier key string for a public key of the given signature type."""
    check_key_name(name)
    key_id = compute_key_id(name, sig_type, public_key)
    return f"{name}+{key_id:08x}+{b64encode(bytes([sig_type]) + public_key)}"


def encode_private_key(name: str, sig_type: int, seed: bytes) -> str:
    """Return the private key string for an Ed25519 seed of the given signature type."""
    public_key = bytes(SigningKey(seed).verify_key)
    key_id = compute_key_id(name, sig_type, public_key)
    return f"PRIVATE+KEY+{name}+{key_id:08x}+{b64encode(bytes([sig_type]) + seed)}"


def ed25519_key_bytes(material: KeyMaterial, sig_type: int) -> bytes:
    """Check that a decoded key is a 32-byte Ed25519 key of ``sig_type`` and return its bytes.

    For a verifier key these are the public key; for a private key, the seed.
    """
    if material.sig_type != sig_type or len(material.key) != 32:
        raise NoteError(f"not an Ed25519 key of signature type 0x{sig_type:02x}")
    return material.key


def check_key_id(material: KeyMaterial, sig_type: int, public_key: bytes) -> None:
    """Raise :class:`NoteError` unless the key string's ID matches its name and key."""
    if compute_key_id(material.name, sig_type, public_key) != material.key_id:
        raise NoteError(f"key ID of {material.name!r} does not match its public key")


def _ed25519_verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    try:
        VerifyKey(public_key).verify(message, signature)
    except (BadSignatureError, ValueError):
        return False
    return True


@dataclass(frozen=True)
class Ed25519PublicKey:
    """An Ed25519 verifier key of one note signature type (``SIG_TYPE``, fixed by each subclass)."""

    SIG_TYPE: ClassVar[int] = ED25519_TYPE

    name: str
    public_key: bytes

    @property
    def key_id(self) -> int:
        """The key's uint32 ID (over the name, the type byte and the public key)."""
        return compute_key_id(self.name, self.SIG_TYPE, self.public_key)

    def vkey(self) -> str:
        """Return this key's verifier key string."""
        return encode_vkey(self.name, self.SIG_TYPE, self.public_key)

    @classmethod
    def from_vkey(cls, vkey: str) -> Self:
        """Parse a verifier key string of this class's type; raises :class:`NoteError` if malformed."""
        material = decode_vkey(vkey)
        public_key = ed25519_key_bytes(material, cls.SIG_TYPE)
        check_key_id(material, cls.SIG_TYPE, public_key)
        return cls(material.name, public_key)


@dataclass(frozen=True, repr=False)
class Ed25519PrivateKey:
    """An Ed25519 private key of one note signature type. ``seed`` is the 32-byte private key; it
    never appears in a repr."""

    SIG_TYPE: ClassVar[int] = ED25519_TYPE

    name: str
    seed: bytes

    def __post_init__(self) -> None:
        check_key_name(self.name)
        if len(self.seed) != 32:
            raise NoteError("Ed25519 seed must be 32 bytes")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

    @property
    def public_key(self) -> bytes:
        """The 32-byte Ed25519 public key."""
        return bytes(SigningKey(self.seed).verify_key)

    @property
    def key_id(self) -> int:
        """The key's uint32 ID."""
        return compute_key_id(self.name, self.SIG_TYPE, self.public_key)

    def private_key(self) -> str:
        """Return the ``PRIVATE+KEY+...`` string. It is secret: never log it."""
        return encode_private_key(self.name, self.SIG_TYPE, self.seed)

    @classmethod
    def from_private_key(cls, skey: str) -> Self:
        """Parse a private key string of this class's type; raises :class:`NoteError` if malformed."""
        material = decode_private_key(skey)
        key = cls(material.name, ed25519_key_bytes(material, cls.SIG_TYPE))
        check_key_id(material, cls.SIG_TYPE, key.public_key)
        return key

    @classmethod
    def generate(cls, name: str) -> Self:
        """Return a new random key named ``name``."""
        return cls(name, secrets.token_bytes(32))


@dataclass(frozen=True)
class Ed25519Verifier(Ed25519PublicKey):
    """Verifier for plain Ed25519 note signatures (type 0x01)."""

    def verify(self, text: bytes, signature: bytes) -> bool:
        """Return whether ``signature`` is a valid Ed25519 signature of ``text``."""
        return len(signature) == 64 and _ed25519_verify(self.public_key, text, signature)


@dataclass(frozen=True, repr=False)
class Ed25519Signer(Ed25519PrivateKey):
    """Signer for plain Ed25519 note signatures (type 0x01)."""

    def sign(self, text: bytes) -> bytes:
        """Return the Ed25519 signature of ``text``."""
        return bytes(SigningKey(self.seed).sign(text).signature)

    def verifier(self) -> Ed25519Verifier:
        """Return the matching verifier."""
        return Ed25519Verifier(self.name, self.public_key)


def generate_key(name: str) -> tuple[str, str]:
    """Return a new Ed25519 key as ``(private key string, verifier key string)``."""
    signer = Ed25519Signer.generate(name)
    return signer.private_key(), signer.verifier().vkey()


# --- notes -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NoteSignature:
    """One signature line: key name, key ID and the signature bytes after the key ID."""

    name: str
    key_id: int
    signature: bytes

    def line(self) -> str:
        """Return the signature line, newline included."""
        raw = self.key_id.to_bytes(4, "big") + self.signature
        return f"{SIG_PREFIX}{self.name} {b64encode(raw)}\n"


@dataclass(frozen=True)
class Note:
    """A parsed (not yet verified) signed note."""

    text: str
    signatures: tuple[NoteSignature, ...]

    def format(self) -> str:
        """Return the note as text."""
        return self.text + "\n" + "".join(s.line() for s in self.signatures)


def _parse_signature_line(line: str) -> NoteSignature:
    if not line.startswith(SIG_PREFIX):
        raise NoteError("signature line must start with an em dash and a space")
    name, sep, b64 = line[len(SIG_PREFIX) :].partition(" ")
    if not sep or not b64:
        raise NoteError("signature line must hold a key name and a signature")
    check_key_name(name)
    raw = b64decode(b64, "signature")
    if len(raw) < 5:
        raise NoteError("signature is too short")
    return NoteSignature(name, int.from_bytes(raw[:4], "big"), raw[4:])


def parse_note(data: str | bytes) -> Note:
    """Parse a signed note; raises :class:`NoteError` if it is malformed in any way."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise NoteError("note is not valid UTF-8") from e
    if any(ord(c) < 0x20 and c != "\n" for c in data):
        raise NoteError("note must not contain control characters other than newline")
    split = data.rfind("\n\n")
    if split < 0:
        raise NoteError("note has no blank line before its signatures")
    text, block = data[: split + 1], data[split + 2 :]
    if not block or not block.endswith("\n"):
        raise NoteError("note must end with a newline-terminated signature line")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"note has more than {MAX_SIGNATURES} signatures")
    return Note(text, tuple(_parse_signature_line(line) for line in lines))


def sign_note(text: str, signers: Iterable[Signer], *, keep: Iterable[NoteSignature] = ()) -> str:
    """Return ``text`` signed by each signer, after any ``keep`` signatures.

    ``text`` MUST be valid note text: it ends with a newline and holds no other control character.
    """
    check_text(text)
    raw = text.encode("utf-8")
    sigs = list(keep)
    for signer in signers:
        check_key_name(signer.name)
        sigs.append(NoteSignature(signer.name, signer.key_id, signer.sign(raw)))
    if not sigs:
        raise NoteError("a signed note needs at least one signature")
    return Note(text, tuple(sigs)).format()


def add_signatures(note: str | bytes, signers: Iterable[Signer]) -> str:
    """Return ``note`` with one more signature line per signer (e.g. a cosignature)."""
    parsed = parse_note(note)
    return sign_note(parsed.text, signers, keep=parsed.signatures)


@dataclass(frozen=True)
class VerifiedNote:
    """A note with the signatures that verified (``verified``) and those from unknown keys."""

    text: str
    verified: tuple[NoteSignature, ...]
    unknown: tuple[NoteSignature, ...]


def open_note(data: str | bytes | Note, verifiers: Iterable[Verifier]) -> VerifiedNote:
    """Parse and verify a note against known keys.

    Lines from unknown keys (no verifier with the same name AND key ID) are ignored. Raises
    :class:`SignatureError` when a known key's line does not verify or no known key signed it.
    """
    note = data if isinstance(data, Note) else parse_note(data)
    known = {(v.name, v.key_id): v for v in verifiers}
    raw = note.text.encode("utf-8")
    verified: list[NoteSignature] = []
    unknown: list[NoteSignature] = []
    for sig in note.signatures:
        verifier = known.get((sig.name, sig.key_id))
        if verifier is None:
            unknown.append(sig)
        elif not verifier.verify(raw, sig.signature):
            raise SignatureError(f"signature by {sig.name} ({sig.key_id:08x}) does not verify")
        elif sig not in verified:
            verified.append(sig)
    if not verified:
        raise SignatureError("note is not signed by any known key")
    return VerifiedNote(note.text, tuple(verified), tuple(unknown))
