"""The ledger's reader interface: proofs an auditor can check, and tenant isolation in the database."""

from __future__ import annotations

import uuid
from pathlib import Path

import asyncpg
import pytest

from sealtrail.core.tlogproof import verify_proof
from sealtrail.core.verify import check_consistency, check_inclusion, verifier_from_vkey
from sealtrail.errors import InvalidInputError, NotFoundError
from services.ledger.postgres.reader import PostgresLedgerReader
from tests.integration.test_ledger import ledger_settings, running
from tests.support.ledger import create_tenants, produce, sealed, wait_for_checkpoint


async def test_reader_serves_verifiable_proofs_and_isolates_tenants(
    fresh_db_url: str, kafka_bootstrap: str, topic_name: str, tmp_path: Path
) -> None:
    """Checkpoints, entries, inclusion/consistency proofs and tlog-proof files verify with the
    log-core verifier; another tenant sees none of it, as if the log did not exist."""
    await create_tenants(fresh_db_url, "acme", "beta")
    settings = ledger_settings(fresh_db_url, kafka_bootstrap, topic_name, tmp_path / "keys")
    first = [sealed("acme") for _ in range(37)]
    async with running(settings):
        await produce(kafka_bootstrap, topic_name, first)
        await wait_for_checkpoint(fresh_db_url, {"acme": 37})
        await produce(kafka_bootstrap, topic_name, [sealed("acme") for _ in range(26)] + [sealed("beta")])
        await wait_for_checkpoint(fresh_db_url, {"acme": 63, "beta": 1})
    pool = await asyncpg.create_pool(fresh_db_url)
    try:
        reader = PostgresLedgerReader(pool=pool)
        keys = [verifier_from_vkey(k.vkey) for k in await reader.published_keys()]
        assert [log.log_id for log in await reader.logs("acme")] == ["acme"]
        latest = await reader.latest_checkpoint("acme", "acme")
        cps = await reader.checkpoints("acme", "acme", 0, latest.size)
        assert cps[-1].size == latest.size == 63
        entries = await reader.entries("acme", "acme", 0, 63)
        assert [e.index for e in entries] == list(range(63))
        proof_file = await reader.tlog_proof("acme", uuid.UUID(first[5].event_id))
        checkpoint = verify_proof(proof_file, entries[5].entry, keys)
        assert checkpoint.size == 63
        inclusion = await reader.inclusion_proof("acme", "acme", 10, 63)
        check_inclusion(entries[10].entry, 10, inclusion, checkpoint)
        from sealtrail.core.checkpoint import parse_checkpoint
        from sealtrail.core.note import parse_note

        old = parse_checkpoint(parse_note(cps[0].note).text)
        check_consistency(old, checkpoint, await reader.consistency_proof("acme", "acme", old.size, 63))

        assert [log.log_id for log in await reader.logs("beta")] == ["beta"]
        with pytest.raises(NotFoundError):
            await reader.latest_checkpoint("beta", "acme")
        with pytest.raises(NotFoundError):
            await reader.entries("beta", "acme", 0, 10)
        with pytest.raises(NotFoundError):
            await reader.tlog_proof("beta", uuid.UUID(first[5].event_id))
        with pytest.raises(InvalidInputError):
            await reader.inclusion_proof("acme", "acme", 1, 64)
    finally:
        await pool.close()


async def test_row_level_security_hides_other_tenants_rows(
    fresh_db_url: str, kafka_bootstrap: str, topic_name: str, tmp_path: Path
) -> None:
    """As the reader role, a tenant's transaction sees only its own rows in every ledger table."""
    await create_tenants(fresh_db_url, "acme", "beta")
    settings = ledger_settings(fresh_db_url, kafka_bootstrap, topic_name, tmp_path / "keys")
    async with running(settings):
        await produce(kafka_bootstrap, topic_name, [sealed("acme") for _ in range(5)] + [sealed("beta")])
        await wait_for_checkpoint(fresh_db_url, {"acme": 5, "beta": 1})
    conn = await asyncpg.connect(fresh_db_url)
    try:
        async with conn.transaction():
            await conn.execute("SET LOCAL ROLE sealtrail_reader")
            await conn.execute("SELECT set_config('sealtrail.tenant', 'beta', true)")
            for table in ("logs", "entries", "payloads", "tree_nodes", "batches", "checkpoints"):
                others = await conn.fetchval(f"SELECT count(*) FROM {table} WHERE log_id <> 'beta'")
                assert others == 0, table
            assert await conn.fetchval("SELECT count(*) FROM entries") == 1
        async with conn.transaction():
            await conn.execute("SET LOCAL ROLE sealtrail_reader")
            assert await conn.fetchval("SELECT count(*) FROM entries") == 0  # no tenant set: nothing
    finally:
        await conn.close()
