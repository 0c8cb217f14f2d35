"""Sealing, opening and crypto-shredding of payloads; KEK wrapping; subject_ref."""

from __future__ import annotations

import dataclasses
from typing import Any

import blake3
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.bindings import crypto_aead_xchacha20poly1305_ietf_decrypt

from sealtrail.core.canonical import canonical_json
from sealtrail.core.sealing import (
    DataKey,
    SealedPayload,
    derive_payload_key,
    open_sealed,
    payload_digest,
    seal,
    seal_json,
    subject_ref,
)
from sealtrail.errors import InvalidInputError, PeriodExpiredError, SealingError, SubjectErasedError

EID = "0192f3a0-7c4e-7b21-9d3a-5e8f1c2b4a6d"
SECRET = "PLANTED-SECRET-9e2b"
PAYLOAD: dict[str, Any] = {"arguments": {"q": SECRET, "n": 3}, "end_user": "alice@example.com", "ok": True}


@pytest.fixture
def keys() -> tuple[DataKey, list[DataKey]]:
    return DataKey.generate("period"), [DataKey.generate("subject") for _ in range(3)]


def _seal(period: DataKey, subjects: list[DataKey], **kwargs: Any) -> SealedPayload:
    return seal(PAYLOAD, tenant="acme", event_id=EID, type="tool_call", period_key=period,
                subject_keys=subjects, **kwargs)


def _open(sealed: SealedPayload, keys: list[DataKey], **changes: str) -> dict[str, Any]:
    where = {"tenant": "acme", "event_id": EID, "type": "tool_call", **changes}
    return open_sealed(sealed, keys={k.key_id: k for k in keys}, **where)


def test_round_trip(keys: tuple[DataKey, list[DataKey]]) -> None:
    """A sealed payload opens to the same value with the same keys and identifiers."""
    period, subjects = keys
    sealed = _seal(period, subjects)
    assert _open(sealed, [period, *subjects]) == PAYLOAD
    assert sealed.size == len(canonical_json(PAYLOAD))
    assert SECRET.encode() not in sealed.ciphertext


def test_round_trip_without_subjects(keys: tuple[DataKey, list[DataKey]]) -> None:
    """A payload with no subjects is sealed by the period key alone."""
    period, _ = keys
    sealed = _seal(period, [])
    assert sealed.key_ids == (period.key_id,)
    assert _open(sealed, [period]) == PAYLOAD


def test_key_ids_period_first_then_sorted(keys: tuple[DataKey, list[DataKey]]) -> None:
    """The header's key_ids list the period key, then the subject keys in ascending order."""
    period, subjects = keys
    sealed = _seal(period, list(reversed(subjects)))
    assert sealed.key_ids == (period.key_id, *sorted(k.key_id for k in subjects))
    assert sealed.header_fields() == {"key_ids": list(sealed.key_ids), "payload_digest": sealed.digest,
                                      "payload_size": sealed.size}


def test_nonce_is_random(keys: tuple[DataKey, list[DataKey]]) -> None:
    """Sealing twice gives different nonces, ciphertexts and digests."""
    period, subjects = keys
    one, two = _seal(period, subjects), _seal(period, subjects)
    assert one.nonce != two.nonce and one.ciphertext != two.ciphertext and one.digest != two.digest


def test_digest_is_blake3_of_nonce_and_ciphertext(keys: tuple[DataKey, list[DataKey]]) -> None:
    """payload_digest = 'blake3:' + hex(BLAKE3(nonce || ciphertext))."""
    period, subjects = keys
    sealed = _seal(period, subjects)
    assert sealed.digest == "blake3:" + blake3.blake3(sealed.nonce + sealed.ciphertext).hexdigest()
    assert sealed.digest == payload_digest(sealed.nonce, sealed.ciphertext)
    assert len(sealed.nonce) == 24


def test_documented_byte_format(keys: tuple[DataKey, list[DataKey]]) -> None:
    """The ciphertext opens by the byte recipe in docs/events.md, done by hand."""
    period, subjects = keys
    sealed = _seal(period, subjects, nonce=bytes(range(24)))
    ordered = sorted(subjects, key=lambda k: k.key_id)
    material = period.secret + b"".join(k.secret for k in ordered) + EID.encode("ascii")
    key = blake3.blake3(material, derive_key_context="sealtrail payload v1").digest()
    key_ids = [period.key_id, *(k.key_id for k in ordered)]
    quoted = ",".join(f'"{k}"' for k in key_ids)
    aad = f'{{"event_id":"{EID}","key_ids":[{quoted}],"tenant":"acme","type":"tool_call"}}'.encode()
    plaintext = crypto_aead_xchacha20poly1305_ietf_decrypt(sealed.ciphertext, aad, bytes(range(24)), key)
    assert plaintext == canonical_json(PAYLOAD)
    assert orjson.loads(plaintext) == PAYLOAD


@pytest.mark.parametrize("missing", [0, 1, 2, 3])
def test_any_missing_key_shreds(keys: tuple[DataKey, list[DataKey]], missing: int) -> None:
    """Without the period key or any one subject key the payload cannot be opened."""
    period, subjects = keys
    sealed = _seal(period, subjects)
    available = [period, *subjects]
    del available[missing]
    with pytest.raises(SealingError, match="missing") as caught:
        _open(sealed, available)
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize("wrong", [0, 1, 2, 3])
def test_any_wrong_key_fails(keys: tuple[DataKey, list[DataKey]], wrong: int) -> None:
    """A key with the right id but other secret bytes makes opening fail without plaintext."""
    period, subjects = keys
    sealed = _seal(period, subjects)
    available = [period, *subjects]
    impostor = DataKey.generate(available[wrong].kind)
    available[wrong] = dataclasses.replace(impostor, key_id=available[wrong].key_id)
    with pytest.raises(SealingError, match="failed to open") as caught:
        _open(sealed, available)
    assert SECRET not in str(caught.value) and SECRET not in repr(caught.value.__cause__)


def test_erased_subject_key_raises_subject_erased(keys: tuple[DataKey, list[DataKey]]) -> None:
    """A key store's tombstone for a subject key gives SubjectErasedError."""
    period, subjects = keys
    sealed = _seal(period, subjects)
    with pytest.raises(SubjectErasedError):
        _open(sealed, [period, subjects[0].erased(), *subjects[1:]])


def test_expired_period_key_raises_period_expired(keys: tuple[DataKey, list[DataKey]]) -> None:
    """A tombstone for the period key gives PeriodExpiredError."""
    period, subjects = keys
    sealed = _seal(period, subjects)
    with pytest.raises(PeriodExpiredError):
        _open(sealed, [period.erased(), *subjects])


def test_swapped_key_kinds_are_refused(keys: tuple[DataKey, list[DataKey]]) -> None:
    """A subject key offered where the period key belongs is refused."""
    period, subjects = keys
    with pytest.raises(SealingError):
        seal(PAYLOAD, tenant="acme", event_id=EID, type="tool_call", period_key=subjects[0],
             subject_keys=[period])
    sealed = _seal(period, subjects)
    posing = DataKey(period.key_id, "subject", period.secret)
    with pytest.raises(SealingError, match="not the period key"):
        _open(sealed, [posing, *subjects])


@pytest.mark.parametrize(
    "changes",
    [{"tenant": "other"}, {"type": "approval"}, {"event_id": "0192f3a0-7c4e-7b21-9d3a-5e8f1c2b4a6e"}],
)
def test_aad_tamper_fails(keys: tuple[DataKey, list[DataKey]], changes: dict[str, str]) -> None:
    """Opening under another tenant, type or event id fails."""
    period, subjects = keys
    sealed = _seal(period, subjects)
    with pytest.raises(SealingError):
        _open(sealed, [period, *subjects], **changes)


def test_key_ids_tamper_fails(keys: tuple[DataKey, list[DataKey]]) -> None:
    """Dropping a key id from the sealed record (and its key) fails to open."""
    period, subjects = keys
    sealed = _seal(period, subjects)
    fewer = dataclasses.replace(sealed, key_ids=sealed.key_ids[:-1])
    with pytest.raises(SealingError):
        _open(fewer, [period, *subjects])


def test_ciphertext_tamper_fails_on_digest(keys: tuple[DataKey, list[DataKey]]) -> None:
    """A flipped ciphertext byte is caught, first by the digest, then by the AEAD tag."""
    period, subjects = keys
    sealed = _seal(period, subjects)
    flipped = bytes([sealed.ciphertext[0] ^ 1]) + sealed.ciphertext[1:]
    with pytest.raises(SealingError, match="digest"):
        _open(dataclasses.replace(sealed, ciphertext=flipped), [period, *subjects])
    rehashed = dataclasses.replace(sealed, ciphertext=flipped, digest=payload_digest(sealed.nonce, flipped))
    with pytest.raises(SealingError, match="failed to open"):
        _open(rehashed, [period, *subjects])


def test_seal_refuses_erased_or_duplicate_keys(keys: tuple[DataKey, list[DataKey]]) -> None:
    """Nothing is sealed under an erased key or a repeated subject key."""
    period, subjects = keys
    with pytest.raises(SubjectErasedError):
        _seal(period, [subjects[0].erased()])
    with pytest.raises(PeriodExpiredError):
        _seal(period.erased(), subjects)
    with pytest.raises(SealingError, match="twice"):
        _seal(period, [subjects[0], subjects[0]])
    with pytest.raises(InvalidInputError):
        seal(PAYLOAD, tenant="acme", event_id=EID.upper(), type="tool_call", period_key=period,
             subject_keys=[])


def test_data_key_repr_hides_secret() -> None:
    """Neither repr nor str of a key shows its secret bytes, in any encoding."""
    key = DataKey.generate("subject")
    for text in (repr(key), str(key), f"{key}", repr([key])):
        assert key.key_id in text
        for form in (repr(key.secret), key.secret.hex(), str(list(key.secret))):
            assert form not in text


def test_data_key_checks_its_fields() -> None:
    """A key id must be 32 hex digits; an active key 32 secret bytes; a tombstone none."""
    with pytest.raises(InvalidInputError):
        DataKey("XYZ", "subject", bytes(32))
    with pytest.raises(InvalidInputError):
        DataKey("a" * 32, "subject", bytes(31))
    with pytest.raises(InvalidInputError):
        DataKey("a" * 32, "subject", bytes(32), "erased")
    assert DataKey("a" * 32, "period", bytes(32)).erased().secret == b""


def test_subject_ref_is_keyed_and_normalised() -> None:
    """subject_ref = BLAKE3-keyed(tenant index key, normalised id); other tenants get other refs."""
    index_key, other_key = bytes(range(32)), bytes(range(1, 33))
    ref = subject_ref(index_key, "  USER:Alice@Example.COM ")
    assert ref == blake3.blake3(b"user:Alice@example.com", key=index_key).digest()
    assert ref == subject_ref(index_key, "user:Alice@example.com")
    assert ref != subject_ref(index_key, "user:alice@example.com")
    assert ref != subject_ref(other_key, "user:Alice@example.com")
    with pytest.raises(InvalidInputError):
        subject_ref(b"short", "user:a")


@settings(max_examples=50, deadline=None)
@given(st.dictionaries(st.text(max_size=8), st.recursive(
    st.none() | st.booleans() | st.text() | st.integers(-(2**53) + 1, 2**53 - 1),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=10), max_size=5))
def test_round_trip_property(payload: dict[str, Any]) -> None:
    """Any JSON object (integers, strings, nesting) survives sealing and opening unchanged."""
    period, subject = DataKey.generate("period"), DataKey.generate("subject")
    sealed = seal(payload, tenant="t", event_id=EID, type="tool_call", period_key=period,
                  subject_keys=[subject])
    opened = open_sealed(sealed, tenant="t", event_id=EID, type="tool_call",
                         keys={period.key_id: period, subject.key_id: subject})
    assert opened == payload


def test_seal_json_matches_seal(keys: tuple[DataKey, list[DataKey]]) -> None:
    """Sealing canonical bytes directly gives exactly what sealing the object gives."""
    period, subjects = keys
    nonce = bytes(24)
    by_object = _seal(period, subjects, nonce=nonce)
    by_bytes = seal_json(canonical_json(PAYLOAD), tenant="acme", event_id=EID, type="tool_call",
                         period_key=period, subject_keys=subjects, nonce=nonce)
    assert by_bytes == by_object
    assert _open(by_bytes, [period, *subjects]) == PAYLOAD


def test_known_answer_vector() -> None:
    """The worked example of docs/events.md, byte for byte (pins the format against drift)."""
    period = DataKey("00000000000000000000000000000001", "period", bytes(range(32)))
    later = DataKey("bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", "subject", bytes(range(32, 64)))
    earlier = DataKey("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "subject", bytes(range(64, 96)))
    payload = {"arguments": {"q": "x"}, "end_user": "alice@example.com"}
    sealed = seal(payload, tenant="acme", event_id=EID, type="tool_call", period_key=period,
                  subject_keys=[later, earlier], nonce=bytes(range(24)))
    assert derive_payload_key(period, [later, earlier], EID).hex() == (
        "04fe1e6a534c1e048a1abf3faab8ad57eddb13e097290abe7a0f2bdb1685cff6")
    assert sealed.key_ids == (period.key_id, earlier.key_id, later.key_id)
    assert sealed.ciphertext.hex() == (
        "55d595b9ac8b2fd97f619c667f7a77ae8cf501fff85644f9819eeaae18ee88990ee9295cd5eed465ce8562a1"
        "37a074c4d210a6e4b1b7c10288d70724202687995269d9573aba")
    assert sealed.digest == "blake3:560d7aa3600ee8dec3127d87b8622142b87b9fc0b38c0d7621363c4caf2873c4"
    assert sealed.size == 54
