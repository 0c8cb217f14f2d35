"""Erasing one data subject (GDPR Art. 17, DESIGN §4), as one resumable sequence of steps.

1. Record the request (by request reference and ``history_ref``) with the subject's active key
   ids, unless the subject is under legal hold (then refuse with the hold's reason).
2. Destroy the subject key in the key store (and drop it from this process's key cache).
3. In one transaction, delete the ciphertexts that needed any of those keys and the subject's
   subject-index rows, and record the counts.
4. Append an ``erasure`` event (key ids, counts, request reference, legal basis, the time after
   which no cache can hold the key) to the tenant's log; acknowledged by the bus.
5. Sign the receipt with the query service's key and mark the request done.

Every step is idempotent and the event id is fixed in step 3, so repeating a request (after a
crash, a timeout or on purpose) finishes the same erasure with the same event, which the ledger
appends once. A finished request returns its stored receipt.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sealtrail.core.erasure import ErasureReceipt, check_request_ref, history_ref, sign_erasure_receipt
from sealtrail.core.note import Signer
from sealtrail.core.sealing import subject_ref
from sealtrail.errors import LegalHoldError
from sealtrail.infra.auth import Principal
from sealtrail.infra.emitter import Emission, EventEmitter, erasure_event, new_event_id
from sealtrail.infra.kek import TenantIndexKeys
from sealtrail.infra.keycache import CachingKeyStore
from services.query.metrics import QueryMetrics
from services.query.ports import ErasureRecord, ErasureStore


@dataclass(frozen=True, slots=True)
class ErasureRequest:
    subject: str
    request_ref: str
    legal_basis: str


class SubjectEraser:
    """Runs erasures (see the module docstring)."""

    def __init__(
        self, *, store: ErasureStore, keystore: CachingKeyStore, index_keys: TenantIndexKeys,
        emitter: EventEmitter, signer: Signer, clear_after: timedelta, metrics: QueryMetrics,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._keystore = keystore
        self._index_keys = index_keys
        self._emitter = emitter
        self._signer = signer
        self._clear_after = clear_after
        self._metrics = metrics
        self._clock = clock

    async def erase(self, principal: Principal, req: ErasureRequest) -> ErasureRecord:
        tenant = principal.tenant_id
        check_request_ref(req.request_ref)
        index_key = await self._index_keys.get(tenant)
        ref, href = subject_ref(index_key, req.subject), history_ref(index_key, req.subject)
        try:
            record = await self._store.begin(tenant, request_ref=req.request_ref, href=href, subject_ref=ref,
                                             legal_basis=req.legal_basis, requested_by=principal.key_id)
        except LegalHoldError:
            self._metrics.erasures_refused.inc()
            raise
        if record.state == "done":
            return record
        destroyed = await self._keystore.erase_subject(tenant, ref)
        key_ids = sorted({*record.erased_key_ids, *destroyed})
        self._keystore.invalidate(tenant=tenant, key_ids=key_ids)
        now = self._clock()
        record = await self._store.delete_data(
            tenant, request_ref=req.request_ref, subject_ref=ref, key_ids=key_ids,
            event_id=record.event_id or new_event_id(), erased_at=now, clear_by=now + self._clear_after)
        await self._append_event(tenant, record)
        receipt = sign_erasure_receipt(_receipt(tenant, record), self._signer)
        done = await self._store.finish(tenant, req.request_ref, receipt)
        self._metrics.erasures.inc()
        self._metrics.payloads_deleted.labels(cause="erasure").inc(record.payloads_deleted)
        return done

    async def _append_event(self, tenant: str, record: ErasureRecord) -> None:
        assert record.event_id is not None and record.erased_at is not None
        assert record.caches_clear_by is not None
        event = erasure_event(
            now=record.erased_at, request_ref=record.request_ref, legal_basis=record.legal_basis,
            erased_key_ids=record.erased_key_ids, payloads_deleted=record.payloads_deleted,
            index_rows_deleted=record.index_rows_deleted, caches_clear_by=record.caches_clear_by,
            event_id=record.event_id)
        await self._emitter.emit(tenant, [Emission(event)])


def _ms(t: datetime | None) -> int:
    assert t is not None
    return int(t.timestamp() * 1000)


def _receipt(tenant: str, record: ErasureRecord) -> ErasureReceipt:
    assert record.event_id is not None
    return ErasureReceipt(
        tenant=tenant, request_ref=record.request_ref, legal_basis=record.legal_basis,
        event_id=str(uuid.UUID(record.event_id)), erased_key_ids=record.erased_key_ids,
        payloads_deleted=record.payloads_deleted, index_rows_deleted=record.index_rows_deleted,
        erased_ms=_ms(record.erased_at), clear_by_ms=_ms(record.caches_clear_by))
