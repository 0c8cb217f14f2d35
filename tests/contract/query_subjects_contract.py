"""Contracts of the data-subject ports, run against every adapter (PostgreSQL and SQLite):
:class:`ErasureStore` (erasure, legal holds, history) and :class:`RetentionStore` (through the
shredder). Subclass and override the ``backend`` fixture, as in :mod:`query_read_contract`.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import cast

import pytest

from sealtrail.core.erasure import history_ref
from sealtrail.core.sealing import subject_ref
from sealtrail.errors import ConflictError, LegalHoldError
from sealtrail.infra.emitter import Emission, EventEmitter, new_event_id
from services.query.metrics import QueryMetrics
from services.query.ports import CallFilter
from services.query.shredder import Shredder
from tests.contract.query_read_contract import _Seeded
from tests.contract.query_seed import ALICE, BOB, Seeded
from tests.support.query_backends import QueryBackend

NOW = datetime(2025, 3, 3, 12, 0, tzinfo=UTC)


async def _erase(backend: QueryBackend, tenant: str, subject: str, request_ref: str) -> None:
    """The erasure steps of :class:`services.query.erasure.SubjectEraser` that touch storage."""
    key = backend.index_keys[tenant]
    ref, href = subject_ref(key, subject), history_ref(key, subject)
    store = backend.stores.erasures
    record = await store.begin(tenant, request_ref=request_ref, href=href, subject_ref=ref,
                               legal_basis="gdpr.art17", requested_by="k-dpo")
    destroyed = await backend.stores.keys.erase_subject(tenant, ref)
    key_ids = sorted({*record.erased_key_ids, *destroyed})
    await store.delete_data(tenant, request_ref=request_ref, subject_ref=ref, key_ids=key_ids,
                            event_id=new_event_id(), erased_at=NOW, clear_by=NOW + timedelta(seconds=30))
    await store.finish(tenant, request_ref, "receipt-text")


class ErasureStoreContract(_Seeded):
    """What every :class:`~services.query.ports.ErasureStore` adapter guarantees."""

    async def test_erasure_deletes_payloads_index_rows_and_key_keeps_history(
            self, backend: QueryBackend, seeded: Seeded) -> None:
        """Alice's ciphertexts and index rows go and her key is erased; entries, other subjects,
        other tenants and the erasure history stay."""
        entries = await backend.raw.count("entries")
        await _erase(backend, "acme", ALICE, "REQ-1")
        inv, tenant_key = backend.stores.investigations, backend.index_keys["acme"]
        for event_id in seeded.alice:
            call = await inv.call_by_event_id("acme", uuid.UUID(event_id), with_payload=True)
            assert call is not None and call.ciphertext is None
        for event_id in seeded.bob:
            call = await inv.call_by_event_id("acme", uuid.UUID(event_id), with_payload=True)
            assert call is not None and call.ciphertext is not None
        ref = subject_ref(tenant_key, ALICE)
        assert (await inv.search_calls("acme", CallFilter({}, subject_ref=ref), None, 10))[0] == []
        assert await backend.raw.count("subject_index", "tenant_id = 'acme'") == 1  # bob's
        assert await backend.raw.count("subject_index", "tenant_id = 'beta'") == 1
        assert await backend.raw.count("entries") == entries
        assert await backend.raw.count("payloads", "tenant_id = 'beta'") == 1
        (record,) = await backend.stores.erasures.history("acme", href=history_ref(tenant_key, ALICE),
                                                          request_ref=None, limit=10)
        assert (record.state, record.payloads_deleted, record.index_rows_deleted) == ("done", 3, 3)
        assert record.receipt == "receipt-text" and len(record.erased_key_ids) == 1
        (key,) = (await backend.stores.keys.get_keys("acme", record.erased_key_ids)).values()
        assert key is not None and key.state == "erased"
        assert await backend.stores.erasures.history("beta", href=None, request_ref=None, limit=10) == []

    async def test_repeated_request_returns_the_same_record(self, backend: QueryBackend, seeded: Seeded) -> None:
        """Beginning a finished request again returns it; naming another subject is a conflict."""
        await _erase(backend, "acme", ALICE, "REQ-1")
        key = backend.index_keys["acme"]
        again = await backend.stores.erasures.begin(
            "acme", request_ref="REQ-1", href=history_ref(key, ALICE), subject_ref=subject_ref(key, ALICE),
            legal_basis="gdpr.art17", requested_by="k-dpo")
        assert again.state == "done" and again.payloads_deleted == 3
        with pytest.raises(ConflictError):
            await backend.stores.erasures.begin(
                "acme", request_ref="REQ-1", href=history_ref(key, BOB), subject_ref=subject_ref(key, BOB),
                legal_basis="gdpr.art17", requested_by="k-dpo")

    async def test_legal_hold_refuses_erasure(self, backend: QueryBackend, seeded: Seeded) -> None:
        """Under hold, begin raises LegalHoldError and records nothing; released with a reason, the
        hold as set and the release are kept, and erasure proceeds."""
        store, key = backend.stores.erasures, backend.index_keys["acme"]
        href = history_ref(key, ALICE)
        await store.set_hold("acme", href, reason="litigation", case_ref="CASE-7", set_by="k-dpo")
        await store.set_hold("acme", href, reason="audit", case_ref=None, set_by="k-dpo")  # replaces
        hold = await store.hold("acme", href)
        assert hold is not None and (hold["reason"], hold["case_ref"]) == ("audit", None)
        assert await store.hold("beta", href) is None
        with pytest.raises(LegalHoldError, match="audit"):
            await store.begin("acme", request_ref="REQ-2", href=href, subject_ref=subject_ref(key, ALICE),
                              legal_basis="gdpr.art17", requested_by="k-dpo")
        assert await store.history("acme", href=href, request_ref=None, limit=10) == []
        assert await backend.raw.count("payloads", "tenant_id = 'acme'") == 24
        assert not await store.clear_hold("beta", href, reason="closed", released_by="k-dpo")
        assert await store.released_holds("acme", href, 10) == []
        assert await store.clear_hold("acme", href, reason="audit.done", released_by="k-dpo2")
        assert not await store.clear_hold("acme", href, reason="audit.done", released_by="k-dpo2")
        assert await store.hold("acme", href) is None
        (released,) = await store.released_holds("acme", href, 10)
        assert (released["reason"], released["case_ref"], released["set_by"]) == ("audit", None, "k-dpo")
        assert (released["release_reason"], released["released_by"]) == ("audit.done", "k-dpo2")
        assert released["released_at"] >= released["set_at"]
        assert await store.released_holds("beta", href, 10) == []
        await _erase(backend, "acme", ALICE, "REQ-2")
        assert [r.request_ref for r in await store.history("acme", href=None, request_ref="REQ-2", limit=5)] == [
            "REQ-2"]


class _Emitter:
    """Collects emitted events instead of publishing them."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Emission]] = []

    def now(self) -> datetime:
        return NOW

    async def emit(self, tenant: str, emissions: list[Emission]) -> list[object]:
        self.events += [(tenant, e) for e in emissions]
        return []


class RetentionStoreContract(_Seeded):
    """What every :class:`~services.query.ports.RetentionStore` adapter guarantees."""

    async def test_expired_period_is_shredded_once(self, backend: QueryBackend, seeded: Seeded) -> None:
        """Past retention, the period key expires and its ciphertexts go (entries stay); the event
        is emitted once; tenants without retention and later passes change nothing."""
        await backend.raw.set_retention("acme", 1)
        emitter = _Emitter()
        shredder = Shredder(store=backend.stores.retention, keystore=backend.stores.keys,
                            emitter=cast(EventEmitter, emitter), metrics=QueryMetrics(),
                            clock=lambda: datetime(2025, 5, 2, tzinfo=UTC))
        entries = await backend.raw.count("entries")
        (outcome,) = await shredder.run_once()
        assert (outcome.tenant, outcome.period, outcome.payloads_deleted) == ("acme", "2025-03", 24)
        assert await backend.raw.count("payloads", "tenant_id = 'acme'") == 0
        assert await backend.raw.count("payloads", "tenant_id = 'beta'") == 1
        assert await backend.raw.count("entries") == entries
        keys = await backend.stores.keys.get_keys("acme", [outcome.period_key_id])
        assert keys[outcome.period_key_id] is not None and keys[outcome.period_key_id].state == "erased"  # type: ignore[union-attr]
        assert [(t, e.event.type) for t, e in emitter.events] == [("acme", "retention")]
        assert await shredder.run_once() == []
        assert len(emitter.events) == 1

    async def test_pending_run_resumes_with_its_event_id(self, backend: QueryBackend, seeded: Seeded) -> None:
        """A run started but not finished is resumed by the next pass with the event id it began with."""
        store = backend.stores.retention
        keys = await store.active_period_keys("acme")
        assert sorted(keys) == ["2025-03"]
        event_id = new_event_id()
        await store.start_run("acme", "2025-03", keys["2025-03"], event_id)
        await store.start_run("acme", "2025-03", keys["2025-03"], new_event_id())  # idempotent
        assert await store.pending_runs("acme") == [("2025-03", keys["2025-03"])]
        assert await store.pending_runs("beta") == []
        emitter = _Emitter()
        shredder = Shredder(store=store, keystore=backend.stores.keys, emitter=cast(EventEmitter, emitter),
                            metrics=QueryMetrics(), clock=lambda: NOW)
        (outcome,) = await shredder.run_once("acme")
        assert outcome.event_id == event_id and outcome.payloads_deleted == 24
        assert await store.pending_runs("acme") == []

    async def test_tenant_lock_is_exclusive(self, backend: QueryBackend, seeded: Seeded) -> None:
        """While one holder has a tenant's lock, another does not get it; other tenants are free."""
        store = backend.stores.retention
        async with store.locked("acme") as first:
            assert first
            async with store.locked("acme") as second:
                assert not second
            async with store.locked("beta") as other:
                assert other
        async with store.locked("acme") as again:
            assert again
        assert [t for t, _ in await store.tenants(None)] == ["acme", "beta"]
        assert await store.tenants("beta") == [("beta", None)]
