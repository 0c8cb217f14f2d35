"""Erasure on PostgreSQL leaves no trace in the files of ``payloads``: the erased ciphertexts and
nonces are not in the table's or its TOAST table's files after a checkpoint (the erasure
rewrites the table with ``VACUUM (FULL)``), while the other subjects' ciphertexts are."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from sealtrail.core.erasure import history_ref
from sealtrail.core.sealing import subject_ref
from sealtrail.errors import UnavailableError
from services.query.ports import ErasureRecord
from services.query.postgres.erasure import PostgresErasureStore
from tests.contract.query_seed import ALICE, seed
from tests.contract.query_subjects_contract import _erase
from tests.support.query_backends import postgres_query_backend
from tests.support.traces import Sealed, read_all, traced

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


async def _sealed(conn: asyncpg.Connection, event_ids: list[str]) -> list[Sealed]:
    rows = await conn.fetch(
        "SELECT p.nonce, p.ciphertext FROM payloads p JOIN entries e ON e.log_id = p.log_id AND e.idx = p.idx"
        " WHERE e.event_id = ANY($1::uuid[])", [uuid.UUID(e) for e in event_ids])
    return [(bytes(r["nonce"]), bytes(r["ciphertext"])) for r in rows]


async def _payload_files(conn: asyncpg.Connection) -> bytes:
    """The bytes of ``payloads``' files and its TOAST table's, once everything is written out."""
    await conn.execute("CHECKPOINT")
    root = Path(await conn.fetchval("SHOW data_directory"))
    rels = await conn.fetch(
        "SELECT pg_relation_filepath(c.oid) AS main, pg_relation_filepath(c.reltoastrelid) AS toast"
        " FROM pg_class c WHERE c.oid = 'payloads'::regclass")
    paths = [root / p for r in rels for p in (r["main"], r["toast"]) if p]
    files = [f for p in paths for f in p.parent.glob(p.name + "*")]  # segments .1, .2, ... and forks
    assert files, f"no relation files found under {root}"
    return read_all(files)


async def test_erased_ciphertexts_are_in_no_file_of_payloads(fresh_db_url: str) -> None:
    """Before the erasure alice's ciphertexts are in the files (the scan finds what is there);
    after it none of their nonces or ciphertext slices is, and bob's still are."""
    async with postgres_query_backend(fresh_db_url) as backend:
        seeded = await seed(backend)
        conn = await asyncpg.connect(fresh_db_url)
        try:
            alice, bob = await _sealed(conn, seeded.alice), await _sealed(conn, seeded.bob)
            assert len(alice) == len(seeded.alice) > 0 and len(bob) == len(seeded.bob) > 0
            before = await _payload_files(conn)
            assert traced(before, alice) == len(alice) and traced(before, bob) == len(bob)
            await _erase(backend, "acme", ALICE, "REQ-TRACE")
            assert await _sealed(conn, seeded.alice) == []
            after = await _payload_files(conn)
            assert traced(after, alice) == 0, "an erased ciphertext is still in the files of payloads"
            assert traced(after, bob) == len(bob)
        finally:
            await conn.close()


async def test_a_reader_holding_payloads_makes_the_erasure_repeatable_not_a_stall(fresh_db_url: str) -> None:
    """While a transaction holds payloads, the rewrite gives up after its lock timeout with
    UnavailableError (503, repeatable) instead of queueing every ledger commit behind it; the
    deletion itself is committed, and repeating the step once the reader is gone finishes it."""
    async with postgres_query_backend(fresh_db_url) as backend:
        seeded = await seed(backend)
        pool = await asyncpg.create_pool(fresh_db_url, min_size=1, max_size=2)
        reader = await asyncpg.connect(fresh_db_url)
        try:
            store = PostgresErasureStore(pool=pool, lock_timeout_ms=200)
            key = backend.index_keys["acme"]
            ref, href = subject_ref(key, ALICE), history_ref(key, ALICE)
            record = await store.begin("acme", request_ref="REQ-LOCK", href=href, subject_ref=ref,
                                       legal_basis="gdpr.art17", requested_by="k-dpo")
            key_ids = sorted({*record.erased_key_ids, *await backend.stores.keys.erase_subject("acme", ref)})
            event_id = str(uuid.uuid4())

            async def step() -> ErasureRecord:
                return await store.delete_data("acme", request_ref="REQ-LOCK", subject_ref=ref, key_ids=key_ids,
                                               event_id=event_id, erased_at=NOW, clear_by=NOW)

            tx = reader.transaction()
            await tx.start()
            await reader.fetchval("SELECT count(*) FROM payloads")  # ACCESS SHARE until the end
            with pytest.raises(UnavailableError, match="repeat"):
                await step()
            other = await asyncpg.connect(fresh_db_url)
            try:
                assert await _sealed(other, seeded.alice) == []  # the deletion committed
            finally:
                await other.close()
            await tx.rollback()
            done = await step()
            assert done.payloads_deleted == len(seeded.alice)
        finally:
            await reader.close()
            await pool.close()
