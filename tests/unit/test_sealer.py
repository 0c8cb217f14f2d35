"""Ingest's batch sealer: byte-identical to the core's sealing, one signature per batch, keys checked."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import blake3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.bindings import crypto_aead_xchacha20poly1305_ietf_encrypt

from sealtrail.core.canonical import canonical_json
from sealtrail.core.events import header_dict
from sealtrail.core.fields import format_timestamp
from sealtrail.core.keystore import MemoryKeyStore
from sealtrail.core.note import Ed25519Signer, parse_note
from sealtrail.core.receipt import CachedEd25519Signer, parse_receipt_proof, verify_receipt
from sealtrail.core.record import decode_record
from sealtrail.core.sealing import DataKey, SealedPayload, open_sealed, seal_json
from sealtrail.core.validation import validate_batch
from sealtrail.errors import PeriodExpiredError, SealingError, SubjectErasedError
from sealtrail.infra.auth import Principal, Role
from sealtrail.sdk import health_check, tool_call, uuid7
from services.ingest.sealer import BatchSealer, Sealer, SealingKeys, _encrypt, seal_canonical

EVENT_ID = "0190f0e8-1234-7abc-8def-0123456789ab"
NONCE = bytes(range(24))


def fixed_key(kind: str, byte: int) -> DataKey:
    return DataKey(f"{byte:02x}" * 16, kind, bytes([byte]) * 32)  # type: ignore[arg-type]


PERIOD = fixed_key("period", 1)
SUBJECTS = [fixed_key("subject", b) for b in (0x30, 0x20, 0x10)]


# Computed once with sealtrail.core.sealing.seal_json; pinned so that a change to either side shows.
KNOWN_CIPHERTEXT = bytes.fromhex("7dbbb1317c570b109ac8352a6da9943096272c1d805ebd")
KNOWN_DIGEST = "blake3:8942d73d906ef2e2b2ac87323bba765d99dfce6a74b67988c2533f3d09a01968"


def test_known_answer() -> None:
    """Fixed keys, nonce and payload give exactly the pinned ciphertext and digest, as seal_json does."""
    args: dict[str, Any] = {"tenant": "acme", "event_id": EVENT_ID, "type": "tool_call", "period_key": PERIOD,
                            "subject_keys": SUBJECTS[:2], "nonce": NONCE}
    sealed = seal_canonical(b'{"a":1}', **args)
    assert sealed == seal_json(b'{"a":1}', **args)
    assert (sealed.ciphertext, sealed.digest, sealed.size) == (KNOWN_CIPHERTEXT, KNOWN_DIGEST, 7)
    assert sealed.key_ids == (PERIOD.key_id, "20" * 16, "30" * 16)
    assert "blake3:" + blake3.blake3(NONCE + KNOWN_CIPHERTEXT).hexdigest() == KNOWN_DIGEST


def json_text(max_size: int) -> st.SearchStrategy[str]:
    """JSON-safe text (no lone surrogates)."""
    return st.text(st.characters(blacklist_categories=("Cs",)), max_size=max_size)


@settings(max_examples=60, deadline=None)
@given(
    payload=st.dictionaries(json_text(max_size=8), st.integers(-(2**53) + 1, 2**53 - 1) | json_text(max_size=40),
                            max_size=6),
    subjects=st.integers(min_value=0, max_value=3),
    nonce=st.binary(min_size=24, max_size=24),
    tenant=st.from_regex(r"[a-z0-9][a-z0-9-]{0,20}", fullmatch=True),
    type=st.sampled_from(["tool_call", "approval", "health_check"]),
)
def test_byte_identical_to_the_core(payload: dict[str, Any], subjects: int, nonce: bytes, tenant: str,
                                    type: str) -> None:
    """For any payload, key set, nonce, tenant and type: the same SealedPayload as seal_json, and
    open_sealed gives the payload back."""
    plaintext = canonical_json(payload)
    keys = [DataKey.generate("subject") for _ in range(subjects)]
    period = DataKey.generate("period")
    ours = seal_canonical(plaintext, tenant=tenant, event_id=EVENT_ID, type=type, period_key=period,
                          subject_keys=keys, nonce=nonce)
    core = seal_json(plaintext, tenant=tenant, event_id=EVENT_ID, type=type, period_key=period,
                     subject_keys=keys, nonce=nonce)
    assert ours == core and ours.ciphertext == core.ciphertext
    by_id = {k.key_id: k for k in [period, *keys]}
    assert open_sealed(ours, tenant=tenant, event_id=EVENT_ID, type=type, keys=by_id) == payload


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=300), st.binary(min_size=1, max_size=100), st.binary(min_size=24, max_size=24),
       st.binary(min_size=32, max_size=32))
def test_encrypt_is_the_binding_without_its_checks(plaintext: bytes, aad: bytes, nonce: bytes, key: bytes) -> None:
    """The direct libsodium call writes the same bytes as PyNaCl's binding."""
    assert _encrypt(plaintext, aad, nonce, key) == crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, aad,
                                                                                              nonce, key)


def test_encrypt_refuses_wrong_lengths() -> None:
    """libsodium reads fixed lengths, so a short nonce or key is refused before the call."""
    with pytest.raises(SealingError):
        _encrypt(b"x", b"a", bytes(23), bytes(32))
    with pytest.raises(SealingError):
        _encrypt(b"x", b"a", bytes(24), bytes(31))


def test_keys_are_checked_once_per_set() -> None:
    """Wrong kinds, erased keys and a repeated subject key are refused as seal_json refuses them."""
    subject = DataKey.generate("subject")
    with pytest.raises(SealingError):
        SealingKeys(tenant="acme", period_key=subject, subject_keys=[])
    with pytest.raises(SealingError):
        SealingKeys(tenant="acme", period_key=PERIOD, subject_keys=[PERIOD])
    with pytest.raises(PeriodExpiredError):
        SealingKeys(tenant="acme", period_key=PERIOD.erased(), subject_keys=[])
    with pytest.raises(SubjectErasedError):
        SealingKeys(tenant="acme", period_key=PERIOD, subject_keys=[subject, subject.erased()][1:])
    with pytest.raises(SealingError):
        SealingKeys(tenant="acme", period_key=PERIOD, subject_keys=[subject, subject])
    assert "secret" not in repr(SealingKeys(tenant="acme", period_key=PERIOD, subject_keys=[subject]))


def test_batch_records_match_the_core() -> None:
    """Each record decodes, its header is header_dict of the validated event, and its payload opens
    with open_sealed under the period key and the event's subject keys (sealed {} when absent)."""
    now = datetime.now(UTC)
    raw = [tool_call(agent_id="a", server_id="s", tool_name="t", decision="allow", status="ok",
                     payload={"q": "é"}, subjects=["user:b@example.com", "user:a@example.com"]),
           tool_call(agent_id="a", server_id="s", tool_name="t", decision="allow", status="ok",
                     payload={"q": 2}, subjects=["user:a@example.com"]),
           health_check(server_id="s", status="healthy")]
    valid, rejected = validate_batch(raw, now=now)
    assert not rejected
    subject_keys = {s: DataKey.generate("subject") for v in valid for s in v.subjects}
    stamp = {"tenant": "acme", "gateway_id": "gw", "received_at": format_timestamp(now)}
    sealer = BatchSealer(stamp=stamp, period_key=PERIOD, subject_keys=subject_keys)
    by_id = {k.key_id: k for k in [PERIOD, *subject_keys.values()]}
    for i, v in enumerate(valid):
        nonce = bytes([i]) * 24
        record = decode_record(sealer.seal(v, raw[v.index], nonce).encode())
        sealed = SealedPayload(record.nonce, record.ciphertext, tuple(record.header["key_ids"]),
                               record.header["payload_digest"], record.header["payload_size"])
        assert sealed == seal_json(v.payload_json or b"{}", tenant="acme", event_id=v.event.event_id,
                                   type=v.event.type, period_key=PERIOD,
                                   subject_keys=[subject_keys[s] for s in v.subjects], nonce=nonce)
        assert record.header == header_dict(v.event, tenant="acme", gateway_id="gw", received_at=now,
                                            sealed=sealed.header_fields())
        assert list(record.header)[-3:] == ["key_ids", "payload_digest", "payload_size"]
        opened = open_sealed(sealed, tenant="acme", event_id=v.event.event_id, type=v.event.type, keys=by_id)
        assert opened == raw[v.index].get("payload", {})
    assert "payload" in raw[0] and "subjects" in raw[0]  # the events as sent are left alone


class _IndexKeys:
    async def get(self, tenant: str) -> bytes:
        return b"\x07" * 32


async def test_prepare_seals_and_signs_the_batch_once() -> None:
    """prepare: one record per accepted event, rejections kept, every receipt verifies and promises
    the record's digest, and the batch's receipts share one signed note."""
    signer = Ed25519Signer.generate("sealtrail-ingest")
    now = datetime.now(UTC)
    sealer = Sealer(keystore=MemoryKeyStore(), index_keys=_IndexKeys(),  # type: ignore[arg-type]
                    signer=CachedEd25519Signer(signer), clock=lambda: now)
    raw: list[object] = [tool_call(agent_id="a", server_id="s", tool_name="t", decision="allow", status="ok",
                                   payload={"n": i}, subjects=[f"user:{i % 3}@example.com"]) for i in range(7)]
    raw.insert(2, {"type": "tool_call", "event_id": uuid7()})
    batch = await sealer.prepare(Principal(key_id="k" * 16, tenant_id="acme", role=Role.GATEWAY, label="gw-1"),
                                 raw)
    assert [r.index for r in batch.rejected] == [2]
    assert len(batch.records) == len(batch.accepted) == 7
    records = [decode_record(value) for key, value in batch.records if key == b"acme"]
    notes = set()
    for record, accepted in zip(records, batch.accepted, strict=True):
        promise = verify_receipt(accepted.receipt, [signer.verifier()])
        assert (promise.event_id, promise.log, promise.digest) == (record.event_id, "acme",
                                                                   record.header["payload_digest"])
        assert promise.time_ms == int(now.timestamp() * 1000)
        notes.add(parse_receipt_proof(accepted.receipt).note)
    assert len(notes) == 1 and len(parse_note(notes.pop()).signatures) == 1
    assert len({r.nonce for r in records}) == 7
