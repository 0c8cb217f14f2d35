"""The production ledger (Kafka, PostgreSQL) with witnesses: each checkpoint reaches the quorum and
its stored note carries the cosignatures; the lag gauge returns to 0; a down witness changes nothing."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import asyncpg
from prometheus_client import REGISTRY

from sealtrail.core.cosignature import CosignatureSigner
from sealtrail.core.quorum import WitnessPolicy
from sealtrail.core.witnessing import WitnessConfig, WitnessingConfig
from sealtrail.infra.postgres import connect, migrate
from services.ledger.postgres.checkpoints import PostgresSigningKeys
from services.ledger.service import LedgerService
from services.ledger.signing import rotate
from tests.integration.test_ledger import ledger_settings
from tests.support.ledger import create_tenants, produce, sealed, wait_for_checkpoint
from tests.support.serve import cli, free_port
from tests.support.witness import WitnessProcess, start_witness, witness_key


async def test_ledger_checkpoints_are_witnessed(fresh_db_url: str, kafka_bootstrap: str, topic_name: str,
                                                tmp_path: Path) -> None:
    """Two sealtrail witnesses (on PostgreSQL and SQLite) and one down, quorum 2."""
    await create_tenants(fresh_db_url, "acme")
    settings = ledger_settings(fresh_db_url, kafka_bootstrap, topic_name, tmp_path / "keys")
    async with connect(fresh_db_url) as conn:
        await migrate(conn)
        keys = await rotate(PostgresSigningKeys(conn), key_dir=settings.signing_key_dir, name=settings.key_name)
    origin = f"{settings.origin_prefix}/acme"
    witnesses: list[WitnessProcess] = []
    for n, db in enumerate([fresh_db_url, str(tmp_path / "w2.db")], start=1):
        key_file, vkey = witness_key(tmp_path, f"witness.example/w{n}")
        done = cli("witness", "log", "add", "--origin", origin, "--vkey", keys.signer.verifier().vkey(), "--db", db)
        assert done.returncode == 0, done.stderr
        witnesses.append(start_witness(key_file, vkey, db))
    down = WitnessConfig("down", CosignatureSigner.generate("d").verifier(), f"http://127.0.0.1:{free_port()}")
    config = WitnessingConfig((*(WitnessConfig(f"w{n}", w.verifier, w.url) for n, w in enumerate(witnesses)),
                               down), quorum=2)
    policy = WitnessPolicy.from_vkeys([w.vkey for w in witnesses], 2)
    service = LedgerService(settings, max_records=700, witnesses=config)
    task = asyncio.create_task(service.run())
    try:
        await produce(kafka_bootstrap, topic_name, [sealed("acme") for _ in range(500)])
        await wait_for_checkpoint(fresh_db_url, {"acme": 500})
        conn = await asyncpg.connect(fresh_db_url)
        try:
            deadline, note = time.monotonic() + 30, ""
            while time.monotonic() < deadline:
                note = await conn.fetchval("SELECT note FROM checkpoints WHERE log_id = 'acme'"
                                           " ORDER BY tree_size DESC LIMIT 1")
                if "\n500\n" in note and len(policy.cosigners(note).names) == 2:
                    break
                await asyncio.sleep(0.1)
        finally:
            await conn.close()
        assert "\n500\n" in note and len(policy.check(note).names) == 2
        await asyncio.sleep(0.5)  # one checkpoint round updates the gauges
        assert REGISTRY.get_sample_value("sealtrail_ledger_witness_lag_entries", {"log": "acme"}) == 0
    finally:
        service.stop()
        await asyncio.wait_for(task, timeout=30)
        for w in witnesses:
            w.stop()
