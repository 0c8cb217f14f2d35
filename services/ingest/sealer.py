"""Turning one submitted batch into sealed records and signed receipts (no HTTP, no Kafka here).

For each event that validates: seal its payload (an event without one gets a sealed empty
object, so every record carries ``key_ids``, ``payload_digest`` and ``payload_size``) under the
period key of the UTC month of ``received_at`` and one key per declared subject; stamp the header
with tenant, gateway, receive time and the sealing fields. The batch's receipts share one
signature (:func:`sealtrail.core.receipt.sign_receipts`).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from nacl.bindings import crypto_aead_xchacha20poly1305_ietf_encrypt

from sealtrail.core.events import SEALED_FIELDS
from sealtrail.core.fields import format_timestamp
from sealtrail.core.keystore import KeyStore, period_of
from sealtrail.core.receipt import CachedEd25519Signer, sign_receipts
from sealtrail.core.record import SealedRecord
from sealtrail.core.sealing import (
    NONCE_BYTES,
    DataKey,
    SealedPayload,
    derive_payload_key,
    payload_digest,
    subject_ref,
)
from sealtrail.core.validation import Rejection, ValidEvent, validate_batch
from sealtrail.infra.auth import Principal
from sealtrail.infra.kek import TenantIndexKeys

EMPTY_PAYLOAD = b"{}"


@dataclass(frozen=True, slots=True)
class AcceptedEvent:
    event_id: str
    log: str
    receipt: str


@dataclass(frozen=True, slots=True)
class PreparedBatch:
    """Records to publish (key = log id), in batch order, with the answer to give once published."""

    records: list[tuple[bytes, bytes]]
    accepted: list[AcceptedEvent]
    rejected: list[Rejection]


def identifiers_aad(*, tenant: str, event_id: str, type: str, key_ids: Sequence[str]) -> bytes:
    """:func:`sealtrail.core.sealing.payload_aad`, by orjson with the keys already in JCS order.

    Every value is a validated ASCII identifier (UUID, hex key ids, ``[a-z0-9-]`` tenant,
    ``[a-z_]`` type), for which RFC 8785 and orjson write the same bytes.
    """
    return orjson.dumps({"event_id": event_id, "key_ids": list(key_ids), "tenant": tenant, "type": type})


def seal_canonical(
    plaintext: bytes, *, tenant: str, event_id: str, type: str, period_key: DataKey,
    subject_keys: Sequence[DataKey],
) -> SealedPayload:
    """:func:`sealtrail.core.sealing.seal` for a payload already in RFC 8785 form.

    Validation has produced the canonical bytes; this reuses them instead of canonicalising the
    payload a second time. Same key derivation, AAD, cipher and digest, so ``open_sealed`` opens it.
    """
    key_ids = (period_key.key_id, *sorted(k.key_id for k in subject_keys))
    nonce = secrets.token_bytes(NONCE_BYTES)
    key = derive_payload_key(period_key, subject_keys, event_id)
    aad = identifiers_aad(tenant=tenant, event_id=event_id, type=type, key_ids=key_ids)
    ciphertext = crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, aad, nonce, key)
    return SealedPayload(nonce, ciphertext, key_ids, payload_digest(nonce, ciphertext), len(plaintext))


def header_from_raw(raw: dict[str, Any], stamp: dict[str, str], sealed: SealedPayload) -> dict[str, Any]:
    """:func:`sealtrail.core.events.header_dict` built from the validated event as it was sent.

    The models are strict (no coercion), forbid unknown fields and refuse nulls, so an accepted
    event's dump equals its raw fields; taking them as sent skips a model dump per event.
    """
    header = {k: v for k, v in raw.items() if k not in SEALED_FIELDS}
    header.update(stamp)
    header.update(sealed.header_fields())
    return header


class Sealer:
    """Validates, seals and signs one batch."""

    def __init__(
        self, *, keystore: KeyStore, index_keys: TenantIndexKeys, signer: CachedEd25519Signer,
        clock: Callable[[], datetime],
    ) -> None:
        self._keystore = keystore
        self._index_keys = index_keys
        self._signer = signer
        self._clock = clock

    async def prepare(self, principal: Principal, raw_events: list[object]) -> PreparedBatch:
        received_at = self._clock()
        valid, rejected = validate_batch(raw_events, now=received_at)
        if not valid:
            return PreparedBatch([], [], rejected)
        tenant = principal.tenant_id
        period_key = await self._keystore.get_or_create_period_key(tenant, period_of(received_at))
        subject_keys = await self._subject_keys(tenant, {s for v in valid for s in v.subjects})
        records: list[tuple[bytes, bytes]] = []
        leaves: list[tuple[str, str]] = []
        log_key = tenant.encode()
        time_ms = int(received_at.timestamp() * 1000)
        stamp = {"tenant": tenant, "gateway_id": principal.gateway_id,
                 "received_at": format_timestamp(received_at)}
        for v in valid:
            keys = [subject_keys[s] for s in v.subjects]
            raw = raw_events[v.index]
            assert isinstance(raw, dict)
            record = self._seal_one(v, raw, stamp, period_key, keys)
            records.append((log_key, record.encode()))
            leaves.append((v.event.event_id, record.header["payload_digest"]))
        receipts = sign_receipts(tenant, time_ms, leaves, self._signer)
        accepted = [AcceptedEvent(event_id, tenant, receipt)
                    for (event_id, _), receipt in zip(leaves, receipts, strict=True)]
        return PreparedBatch(records, accepted, rejected)

    @staticmethod
    def _seal_one(
        v: ValidEvent, raw: dict[str, Any], stamp: dict[str, str], period_key: DataKey,
        subject_keys: list[DataKey],
    ) -> SealedRecord:
        tenant = stamp["tenant"]
        sealed = seal_canonical(
            v.payload_json or EMPTY_PAYLOAD, tenant=tenant, event_id=v.event.event_id, type=v.event.type,
            period_key=period_key, subject_keys=subject_keys,
        )
        header = header_from_raw(raw, stamp, sealed)
        return SealedRecord(log=tenant, header=header, nonce=sealed.nonce, ciphertext=sealed.ciphertext)

    async def _subject_keys(self, tenant: str, subjects: set[str]) -> dict[str, DataKey]:
        if not subjects:
            return {}
        index_key = await self._index_keys.get(tenant)
        ordered = sorted(subjects)
        keys = await asyncio.gather(*(
            self._keystore.get_or_create_subject_key(tenant, subject_ref(index_key, s)) for s in ordered
        ))
        return dict(zip(ordered, keys, strict=True))
