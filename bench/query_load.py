"""Bulk-loading a realistic log for the query benchmark, through the ledger's own sequencer and store.

Every payload is really sealed (period key, plus a subject key for one call in ten) so that
reveal, export and erasure work on the loaded data. Calls are spread over 7 days, 50 agents,
20 servers, 200 tools and sessions of 50 calls; one subject (``TARGET``) has exactly
``target_calls`` calls, the others come from a pool of 5,000. Checkpoints are signed by the
ledger's checkpointer every 100,000 entries; the projector then fills the read models.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from sealtrail.core.canonical import canonical_json
from sealtrail.core.fields import format_timestamp
from sealtrail.core.keystore import period_of
from sealtrail.core.record import SealedRecord
from sealtrail.core.sealing import DataKey, Kek, seal_json, subject_ref
from sealtrail.infra.apikeys import KeyAdmin
from sealtrail.infra.auth import Role
from sealtrail.infra.auth_postgres import PostgresAuthStore
from sealtrail.infra.kek import IndexKeyWrapper
from sealtrail.infra.keystore_postgres import PostgresKeyStore
from sealtrail.sdk.events import uuid7
from services.ledger.checkpointer import Checkpointer
from services.ledger.ports import PartitionCommit
from services.ledger.postgres.checkpoints import PostgresCheckpointStore
from services.ledger.postgres.store import PostgresLedgerStore
from services.ledger.sequencer import LogHead, origin_for, sequence
from services.projector.postgres import PostgresProjectorStore
from services.projector.projector import Projector

TENANT = "bench"
TARGET = "user:target@example.com"
POOL_SUBJECTS = 5000
BATCH = 20_000
CHECKPOINT_EVERY = 100_000


@dataclass(frozen=True)
class Loaded:
    tokens: dict[str, str]
    entries: int
    subjects: list[str]
    start: datetime
    end: datetime
    load_s: float
    project_s: float


async def _provision(pool: asyncpg.Pool, kek: Kek) -> tuple[dict[str, str], bytes]:
    admin = KeyAdmin(store=PostgresAuthStore(pool=pool))
    await admin.create_tenant(TENANT, kek=IndexKeyWrapper(kek=kek, tenant=TENANT))
    tokens = {}
    for role in (Role.INVESTIGATOR, Role.AUDITOR, Role.DPO):
        tokens[role.value] = (await admin.create_key(tenant=TENANT, role=role, label="bench")).token
    row = await pool.fetchrow("SELECT index_key, index_key_kek FROM tenants WHERE tenant_id = $1", TENANT)
    index_key = IndexKeyWrapper(kek=kek, tenant=TENANT).unwrap(bytes(row["index_key"]), kek_id=row["index_key_kek"])
    return tokens, index_key


def _subject_of(i: int, target_every: int) -> str | None:
    if i % target_every == 0:
        return TARGET
    if i % 10 == 3:
        return f"user:u{i % POOL_SUBJECTS}@example.com"
    return None


def _record(i: int, n: int, start: datetime, now: datetime, period: DataKey, subject: DataKey | None) -> SealedRecord:
    event_id = uuid7(ms=int((start.timestamp() + i * 604800 / n) * 1000))
    occurred = start + timedelta(seconds=i * 604800 / n)
    plaintext = canonical_json({"args": {"q": f"select * from t where id = {i}"}, "result": {"rows": i % 100}})
    sealed = seal_json(plaintext, tenant=TENANT, event_id=event_id, type="tool_call", period_key=period,
                       subject_keys=[subject] if subject else [])
    header = {
        "event_id": event_id, "type": "tool_call", "occurred_at": format_timestamp(occurred),
        "received_at": format_timestamp(now), "tenant": TENANT, "gateway_id": "gw-bench",
        "agent_id": f"agent-{i % 50}", "session_id": f"s-{i // 50}", "server_id": f"srv-{i % 20}",
        "tool_name": f"tool-{i % 200}", "tool_tier": ("read", "write", "destructive", "unknown")[i % 4],
        "decision": "deny" if i % 13 == 0 else "allow", "status": "error" if i % 17 == 0 else "ok",
        "latency_ms": i % 900, **sealed.header_fields(),
    }
    return SealedRecord(TENANT, header, sealed.nonce, sealed.ciphertext)


async def load(pool: asyncpg.Pool, kek: Kek, key_dir: Path, *, entries: int, target_calls: int) -> Loaded:
    """Create the tenant, its keys and ``entries`` sealed entries; sign checkpoints; project."""
    started = time.perf_counter()
    tokens, index_key = await _provision(pool, kek)
    keystore = PostgresKeyStore(pool=pool, kek=kek)
    now = datetime.now(UTC)
    start = now - timedelta(days=7)
    period = await keystore.get_or_create_period_key(TENANT, period_of(now))
    target_every = max(1, entries // target_calls)
    names = [TARGET] + [f"user:u{n}@example.com" for n in range(POOL_SUBJECTS)]
    keys = {s: await keystore.get_or_create_subject_key(TENANT, subject_ref(index_key, s)) for s in names}
    store = PostgresLedgerStore(pool=pool)
    checkpointer = Checkpointer(store=PostgresCheckpointStore(pool=pool), key_dir=key_dir)
    await checkpointer.ensure_keys()
    head = LogHead.empty(log_id=TENANT, tenant_id=TENANT, origin=origin_for(TENANT))
    new_logs, offset = [head], 0
    for pos in range(0, entries, BATCH):
        records = []
        for i in range(pos, min(pos + BATCH, entries)):
            subject = _subject_of(i, target_every)
            records.append(_record(i, entries, start, now, period, keys[subject] if subject else None))
        batch = sequence(head, records)
        await store.commit(PartitionCommit("bench", "bench", 0, offset or None, offset + len(records), [batch],
                                           new_logs))
        head, new_logs, offset = batch.after, [], offset + len(records)
        if head.size % CHECKPOINT_EVERY == 0 or head.size == entries:
            await checkpointer.tick()
        print(f"\r  loaded {head.size:,} entries", end="", flush=True)
    print()
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    await Projector(store=PostgresProjectorStore(pool=pool)).catch_up()
    await pool.execute("VACUUM ANALYZE")
    return Loaded(tokens, entries, names, start, now, load_s, time.perf_counter() - started)
