"""Sealing and crypto-shredding of payloads (DESIGN §4). Pure: no I/O beyond the OS random source.

Byte formats (also in ``docs/events.md``):

- ``key_id``: 16 random bytes as 32 lowercase hex digits.
- ``payload_key = BLAKE3.derive_key("sealtrail payload v1", M)`` where ``M`` is the period key's
  32 secret bytes, then each subject key's 32 secret bytes in ascending ``key_id`` order, then the
  event id as its 36 ASCII bytes (lowercase 8-4-4-4-12 text, exactly as in the header).
- ``aad`` = RFC 8785 JSON of ``{"event_id", "key_ids", "tenant", "type"}``; ``key_ids`` is the
  period key id first, then the subject key ids in ascending order (the header's ``key_ids``).
- ciphertext = XChaCha20-Poly1305-IETF(payload_key, 24-byte random nonce, RFC 8785 payload, aad);
  it includes the 16-byte tag.
- ``payload_digest`` = ``"blake3:"`` + 64 lowercase hex digits of BLAKE3(nonce || ciphertext).
- ``payload_size`` = length in bytes of the RFC 8785 payload (the plaintext).
"""

from __future__ import annotations

import hmac
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import blake3
import orjson
from nacl.bindings import (
    crypto_aead_xchacha20poly1305_ietf_decrypt,
    crypto_aead_xchacha20poly1305_ietf_encrypt,
)
from nacl.exceptions import CryptoError

from sealtrail.core.canonical import canonical_json
from sealtrail.core.events import normalise_subject
from sealtrail.core.fields import EVENT_ID_PATTERN, KEY_ID_PATTERN
from sealtrail.errors import InvalidInputError, PeriodExpiredError, SealingError, SubjectErasedError

KEY_BYTES = 32
NONCE_BYTES = 24
KEY_ID_BYTES = 16
PAYLOAD_CONTEXT = "sealtrail payload v1"
KEK_ID_CONTEXT = "sealtrail kek id v1"
KEY_WRAP_CONTEXT = "sealtrail key wrap v1"
DIGEST_PREFIX = "blake3:"

KeyKind = Literal["subject", "period"]
KeyState = Literal["active", "erased"]

_KEY_ID = re.compile(KEY_ID_PATTERN)
_EVENT_ID = re.compile(EVENT_ID_PATTERN)


def new_key_id() -> str:
    """A fresh random key id: 16 random bytes as 32 lowercase hex digits."""
    return secrets.token_bytes(KEY_ID_BYTES).hex()


@dataclass(frozen=True, repr=False)
class DataKey:
    """A subject or period data key. An erased key keeps its id and kind but no secret (``b""``)."""

    key_id: str
    kind: KeyKind
    secret: bytes = field(compare=False)
    state: KeyState = "active"

    def __post_init__(self) -> None:
        if not _KEY_ID.fullmatch(self.key_id):
            raise InvalidInputError("key_id must be 32 lowercase hex digits")
        if self.kind not in ("subject", "period") or self.state not in ("active", "erased"):
            raise InvalidInputError("unknown key kind or state")
        if self.state == "active" and len(self.secret) != KEY_BYTES:
            raise InvalidInputError(f"an active key must hold {KEY_BYTES} secret bytes")
        if self.state == "erased" and self.secret:
            raise InvalidInputError("an erased key must hold no secret bytes")

    def __repr__(self) -> str:
        return f"DataKey(key_id={self.key_id!r}, kind={self.kind!r}, state={self.state!r}, secret=<hidden>)"

    __str__ = __repr__

    @classmethod
    def generate(cls, kind: KeyKind) -> DataKey:
        """A new active key: random id, 32 random secret bytes."""
        return cls(new_key_id(), kind, secrets.token_bytes(KEY_BYTES))

    def erased(self) -> DataKey:
        """The tombstone of this key: same id and kind, no secret."""
        return DataKey(self.key_id, self.kind, b"", "erased")


@dataclass(frozen=True)
class WrappedKey:
    """A data key encrypted under a KEK: what a key store persists."""

    kek_id: str
    key_id: str
    kind: KeyKind
    nonce: bytes
    ciphertext: bytes


class Kek:
    """A key-encryption key. ``kek_id`` names it, so rotating the KEK is a re-wrap of data keys.

    ``kek_id`` = first 8 bytes of ``BLAKE3.derive_key("sealtrail kek id v1", secret)`` as 16 hex
    digits. Wrapping is XChaCha20-Poly1305 with a random 24-byte nonce and
    ``aad`` = RFC 8785 JSON of ``{"context": "sealtrail key wrap v1", "kek_id", "key_id", "kind",
    "tenant"}``, so a wrapped key cannot be moved to another id, kind, tenant or KEK.
    """

    __slots__ = ("_secret", "kek_id")

    def __init__(self, secret: bytes) -> None:
        if len(secret) != KEY_BYTES:
            raise InvalidInputError(f"a KEK must be {KEY_BYTES} bytes")
        self._secret = bytes(secret)
        self.kek_id = blake3.blake3(secret, derive_key_context=KEK_ID_CONTEXT).digest(length=8).hex()

    @classmethod
    def generate(cls) -> Kek:
        return cls(secrets.token_bytes(KEY_BYTES))

    def __repr__(self) -> str:
        return f"Kek(kek_id={self.kek_id!r}, secret=<hidden>)"

    def _aad(self, tenant: str, key_id: str, kind: str) -> bytes:
        return canonical_json({"context": KEY_WRAP_CONTEXT, "kek_id": self.kek_id, "key_id": key_id,
                               "kind": kind, "tenant": tenant})

    def wrap(self, key: DataKey, *, tenant: str) -> WrappedKey:
        """Encrypt an active data key for storage."""
        if key.state != "active":
            raise SealingError("an erased key has nothing to wrap")
        nonce = secrets.token_bytes(NONCE_BYTES)
        aad = self._aad(tenant, key.key_id, key.kind)
        sealed = crypto_aead_xchacha20poly1305_ietf_encrypt(key.secret, aad, nonce, self._secret)
        return WrappedKey(self.kek_id, key.key_id, key.kind, nonce, sealed)

    def unwrap(self, wrapped: WrappedKey, *, tenant: str) -> DataKey:
        """Decrypt a wrapped key; raises :class:`SealingError` if it is not this KEK's or was altered."""
        if wrapped.kek_id != self.kek_id:
            raise SealingError(f"key {wrapped.key_id} is wrapped by KEK {wrapped.kek_id}, not {self.kek_id}")
        aad = self._aad(tenant, wrapped.key_id, wrapped.kind)
        try:
            secret = crypto_aead_xchacha20poly1305_ietf_decrypt(wrapped.ciphertext, aad, wrapped.nonce,
                                                                self._secret)
        except CryptoError as e:
            raise SealingError(f"key {wrapped.key_id} failed to unwrap (wrong KEK or altered)") from e
        return DataKey(wrapped.key_id, wrapped.kind, secret)


def rewrap(wrapped: WrappedKey, *, old: Kek, new: Kek, tenant: str) -> WrappedKey:
    """Move a wrapped key from ``old`` to ``new`` KEK; the payloads it seals are untouched."""
    return new.wrap(old.unwrap(wrapped, tenant=tenant), tenant=tenant)


def subject_ref(tenant_index_key: bytes, subject_id: str) -> bytes:
    """``BLAKE3-keyed(tenant index key, UTF-8 of the normalised subject id)``: 32 bytes.

    The key-store lookup key of a subject. It never appears in a log entry.
    """
    if len(tenant_index_key) != KEY_BYTES:
        raise InvalidInputError(f"a tenant index key must be {KEY_BYTES} bytes")
    normal = normalise_subject(subject_id).encode("utf-8")
    return blake3.blake3(normal, key=tenant_index_key).digest()


@dataclass(frozen=True, repr=False)
class SealedPayload:
    """A sealed payload and the header fields that describe it."""

    nonce: bytes
    ciphertext: bytes
    key_ids: tuple[str, ...]
    digest: str
    size: int

    def __repr__(self) -> str:
        return (f"SealedPayload(key_ids={self.key_ids!r}, digest={self.digest!r}, size={self.size}, "
                f"ciphertext=<{len(self.ciphertext)} bytes>)")

    def header_fields(self) -> dict[str, Any]:
        """``key_ids``, ``payload_digest`` and ``payload_size`` for the log entry's header."""
        return {"key_ids": list(self.key_ids), "payload_digest": self.digest, "payload_size": self.size}


def payload_digest(nonce: bytes, ciphertext: bytes) -> str:
    """``"blake3:"`` + hex of BLAKE3(nonce || ciphertext)."""
    return DIGEST_PREFIX + payload_digest_bytes(nonce, ciphertext).hex()


def payload_digest_bytes(nonce: bytes, ciphertext: bytes) -> bytes:
    """BLAKE3(nonce || ciphertext): the 32 bytes behind ``payload_digest``."""
    return blake3.blake3(nonce + ciphertext).digest()


def payload_aad(*, tenant: str, event_id: str, type: str, key_ids: Sequence[str]) -> bytes:
    """RFC 8785 JSON of ``{"event_id", "key_ids", "tenant", "type"}``: identifiers only."""
    return canonical_json({"tenant": tenant, "event_id": event_id, "type": type, "key_ids": list(key_ids)})


def derive_payload_key(period_key: DataKey, subject_keys: Sequence[DataKey], event_id: str) -> bytes:
    """``BLAKE3.derive_key("sealtrail payload v1", period || subjects by key_id || event_id)``."""
    _check_event_id(event_id)
    ordered = sorted(subject_keys, key=lambda k: k.key_id)
    material = period_key.secret + b"".join(k.secret for k in ordered) + event_id.encode("ascii")
    return blake3.blake3(material, derive_key_context=PAYLOAD_CONTEXT).digest()


def seal(
    payload: Mapping[str, Any],
    *,
    tenant: str,
    event_id: str,
    type: str,
    period_key: DataKey,
    subject_keys: Sequence[DataKey],
    nonce: bytes | None = None,
) -> SealedPayload:
    """Encrypt ``payload`` so that it opens only with the period key and every subject key.

    ``nonce`` is for known-answer tests only; leave it out and a random one is drawn.
    """
    return seal_json(canonical_json(dict(payload)), tenant=tenant, event_id=event_id, type=type,
                     period_key=period_key, subject_keys=subject_keys, nonce=nonce)


def seal_json(
    plaintext: bytes,
    *,
    tenant: str,
    event_id: str,
    type: str,
    period_key: DataKey,
    subject_keys: Sequence[DataKey],
    nonce: bytes | None = None,
) -> SealedPayload:
    """:func:`seal` for a payload already in RFC 8785 form (e.g. ``ValidEvent.payload_json``).

    The caller vouches that ``plaintext`` is the canonical JSON of an object; it is not re-checked.
    """
    _check_keys(period_key, subject_keys)
    key_ids = (period_key.key_id, *sorted(k.key_id for k in subject_keys))
    nonce = secrets.token_bytes(NONCE_BYTES) if nonce is None else nonce
    if len(nonce) != NONCE_BYTES:
        raise InvalidInputError(f"nonce must be {NONCE_BYTES} bytes")
    key = derive_payload_key(period_key, subject_keys, event_id)
    aad = payload_aad(tenant=tenant, event_id=event_id, type=type, key_ids=key_ids)
    ciphertext = crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, aad, nonce, key)
    return SealedPayload(nonce, ciphertext, key_ids, payload_digest(nonce, ciphertext), len(plaintext))


def open_sealed(
    sealed: SealedPayload,
    *,
    tenant: str,
    event_id: str,
    type: str,
    keys: Mapping[str, DataKey | None],
) -> dict[str, Any]:
    """Decrypt a sealed payload with the keys named by ``sealed.key_ids`` (looked up in ``keys``).

    Raises :class:`SubjectErasedError` when a subject key is erased, :class:`PeriodExpiredError`
    when the period key is, and :class:`SealingError` when a key is missing or of the wrong kind,
    the digest does not match, or decryption fails (wrong key, altered bytes or identifiers).
    No message ever holds plaintext.
    """
    if not hmac.compare_digest(payload_digest(sealed.nonce, sealed.ciphertext), sealed.digest):
        raise SealingError("payload digest does not match the sealed bytes")
    if not sealed.key_ids:
        raise SealingError("a sealed payload names at least its period key")
    found = [_usable_key(keys, key_id, "period" if i == 0 else "subject")
             for i, key_id in enumerate(sealed.key_ids)]
    key = derive_payload_key(found[0], found[1:], event_id)
    aad = payload_aad(tenant=tenant, event_id=event_id, type=type, key_ids=sealed.key_ids)
    try:
        plaintext = crypto_aead_xchacha20poly1305_ietf_decrypt(sealed.ciphertext, aad, sealed.nonce, key)
    except CryptoError as e:
        raise SealingError(f"payload of event {event_id} failed to open (wrong key or altered)") from e
    opened: dict[str, Any] = orjson.loads(plaintext)
    return opened


def _usable_key(keys: Mapping[str, DataKey | None], key_id: str, kind: KeyKind) -> DataKey:
    key = keys.get(key_id)
    if key is None:
        raise SealingError(f"{kind} key {key_id} is missing")
    if key.key_id != key_id or key.kind != kind:
        raise SealingError(f"key {key_id} is not the {kind} key the payload names")
    if key.state == "erased":
        if kind == "subject":
            raise SubjectErasedError(f"subject key {key_id} was erased")
        raise PeriodExpiredError(f"period key {key_id} has expired")
    return key


def _check_keys(period_key: DataKey, subject_keys: Sequence[DataKey]) -> None:
    if period_key.kind != "period" or any(k.kind != "subject" for k in subject_keys):
        raise SealingError("sealing needs one period key and only subject keys beside it")
    if period_key.state != "active":
        raise PeriodExpiredError(f"period key {period_key.key_id} has expired")
    for key in subject_keys:
        if key.state != "active":
            raise SubjectErasedError(f"subject key {key.key_id} was erased")
    if len({k.key_id for k in subject_keys}) != len(subject_keys):
        raise SealingError("a subject key appears twice")


def _check_event_id(event_id: str) -> None:
    if not _EVENT_ID.fullmatch(event_id):
        raise InvalidInputError("event_id must be a lowercase UUIDv7 in 8-4-4-4-12 form")
