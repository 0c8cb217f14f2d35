"""PostgreSQL write cost of the ledger's rows, per schema variant.

Usage: ``python bench/bench_pg_writes.py [--entries N] [--batch N] [--rounds N] [--variants a,b,...]``

Starts one durable PostgreSQL (sealtrail.devstack), then for each variant creates a fresh database,
applies the migrations and the variant's changes, and writes N synthetic entries the way the ledger
commits a batch (services/ledger/postgres/store.py): one transaction per batch with the offset
update, the log-head compare-and-set, COPY into ``entries``, ``payloads`` and ``tree_nodes`` and the
``batches`` row. Rows have the ledger's shapes: ~700 B canonical-JSON entry bytes, 32-byte leaf and
chain, ~1.1 KB ciphertext, key ids [period key of the month, one subject key], UUIDv7 event ids and
about one tree node per entry.

Reports PostgreSQL's CPU microseconds per entry (utime + stime of the postmaster's whole process
tree, background writers included) for the load itself and for the load plus a VACUUM of the
three tables (autovacuum is off for them, so work it would do later, such as flushing a GIN
pending list or setting visibility bits, is counted here rather than lost), and wall microseconds
per entry. Variants run interleaved, round after round, so drift on a shared machine spreads over
all of them. Writes bench/results/pg_writes.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg

from bench.ingest_load import tree_cpu_s
from bench.machine import describe
from sealtrail.core.merkle import stored_level
from sealtrail.devstack import PostgresServer
from sealtrail.infra.postgres import migrate
from services.ledger.postgres.store import _ENTRY_COLUMNS, _NODE_COLUMNS, _PAYLOAD_COLUMNS

RESULTS = Path(__file__).resolve().parent / "results" / "pg_writes.json"
TENANT = "bench"
LOG_ID = "bench-log"
TABLES = ("entries", "payloads", "tree_nodes")
_LSN = "SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint"


@dataclass(frozen=True)
class Variant:
    """Schema or session changes applied after the migrations; ``nodes``: which tree_nodes rows are
    written: ``stride`` (every STRIDE-th level, as the ledger does), ``every`` level, or ``none``."""

    name: str
    ddl: tuple[str, ...] = ()
    session: tuple[str, ...] = ()
    nodes: str = "stride"
    note: str = ""


_SECONDARY = ("entries_agent", "entries_session", "entries_tool", "entries_server", "entries_time")
_COLLATE_C_ENTRIES = "ALTER TABLE entries " + ", ".join(
    f'ALTER COLUMN {c} TYPE text COLLATE "C"' for c in ("agent_id", "session_id", "server_id", "tool_name"))
_COLLATE_C_KEYS = 'ALTER TABLE payloads ALTER COLUMN key_ids TYPE text[] COLLATE "C"'
# Whatever the migrations named it: the one UNIQUE constraint of entries, on log_id and event_id.
_DROP_UNIQUE = """DO $$ DECLARE c text; BEGIN
    SELECT conname INTO STRICT c FROM pg_constraint WHERE conrelid = 'entries'::regclass AND contype = 'u';
    EXECUTE format('ALTER TABLE entries DROP CONSTRAINT %I', c);
END $$"""

VARIANTS = {v.name: v for v in (
    Variant("full", note="the schema of the migrations"),
    Variant("no_secondary", tuple(f"DROP INDEX {i}" for i in _SECONDARY),
            note="without the 5 secondary entries indexes"),
    Variant("no_gin", ("DROP INDEX payloads_key_ids",), note="without the GIN index on payloads.key_ids"),
    Variant("no_nodes", nodes="none", note="without tree_nodes rows"),
    Variant("every_level", nodes="every", note="tree_nodes rows of every level (before migration 0009)"),
    Variant("gin_fastupdate_off", ("ALTER INDEX payloads_key_ids SET (fastupdate = off)",),
            note="GIN without the pending list"),
    Variant("gin_pending_64mb", ("ALTER INDEX payloads_key_ids SET (gin_pending_list_limit = 65536)",),
            note="GIN pending list of 64 MB (default 4 MB)"),
    Variant("gin_subject_only", (
        "DROP INDEX payloads_key_ids",
        "CREATE INDEX payloads_subject_keys ON payloads USING gin ((key_ids[2:]))",
        "CREATE INDEX payloads_period_key ON payloads (tenant_id, (key_ids[1]))",
    ), note="GIN on the subject key ids only, btree on the period key id"),
    Variant("wal_compression", session=("SET wal_compression = on",), note="wal_compression = on (pglz)"),
    Variant("unique_log_first", (_DROP_UNIQUE, "ALTER TABLE entries ADD UNIQUE (log_id, event_id)"),
            note="UNIQUE (log_id, event_id), as in 0003"),
    Variant("unique_event_first", (_DROP_UNIQUE, "ALTER TABLE entries ADD UNIQUE (event_id, log_id)"),
            note="UNIQUE (event_id, log_id), as in 0006"),
    Variant("no_unique", (_DROP_UNIQUE,), note="without the UNIQUE constraint on log_id and event_id"),
    Variant("collate_c_entries", (_COLLATE_C_ENTRIES,),
            note='agent_id, session_id, server_id, tool_name COLLATE "C"'),
    Variant("collate_c", (_COLLATE_C_ENTRIES, _COLLATE_C_KEYS),
            note='agent_id, session_id, server_id, tool_name and key_ids COLLATE "C"'),
    *(Variant(f"no_{i}", (f"DROP INDEX {i}",), note=f"without {i}") for i in _SECONDARY),
    Variant("bare", (*(f"DROP INDEX {i}" for i in _SECONDARY), "DROP INDEX payloads_key_ids", _DROP_UNIQUE),
            note="primary keys only"),
)}


# The per-index drops and collate_c_entries refine the default set; ask for them with --variants.
DEFAULT_VARIANTS = ("full", "no_secondary", "no_gin", "no_nodes", "every_level", "gin_fastupdate_off",
                    "gin_pending_64mb", "gin_subject_only", "wal_compression", "unique_log_first",
                    "unique_event_first", "no_unique", "collate_c", "bare")


@dataclass
class Rows:
    """Pre-built rows per batch, so the driver's own work during a run is only COPY encoding."""

    batches: list[tuple[int, list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]]] = field(
        default_factory=list)


def _uuid7(ms: int, rnd: random.Random) -> uuid.UUID:
    rand = rnd.getrandbits(74)
    return uuid.UUID(int=(ms << 80) | (0x7 << 76) | ((rand >> 62) & 0xFFF) << 64 | (0b10 << 62)
                     | (rand & (2**62 - 1)))


def build_rows(entries: int, batch: int, *, seed: int = 7) -> Rows:
    """Synthetic rows with the ledger's column types and sizes (one tenant, one log)."""
    rnd = random.Random(seed)
    agents = [f"agent-{i:03d}" for i in range(50)]
    tools = [f"tool.{i:02d}.call" for i in range(30)]
    servers = [f"mcp-server-{i}" for i in range(6)]
    subjects = [os.urandom(16).hex() for _ in range(2000)]
    period = os.urandom(16).hex()
    start = datetime(2026, 11, 1, tzinfo=UTC)
    session = ""
    out = Rows()
    for first in range(0, entries, batch):
        ents, pays = [], []
        for i in range(first, min(first + batch, entries)):
            occurred = start + timedelta(milliseconds=i * 5 + rnd.randrange(50))
            received = occurred + timedelta(milliseconds=rnd.randrange(1, 30))
            event_id = _uuid7(int(occurred.timestamp() * 1000), rnd)
            agent, tool, server = rnd.choice(agents), rnd.choice(tools), rnd.choice(servers)
            if i % 20 == 0:
                session = f"sess-{uuid.UUID(int=rnd.getrandbits(128))}"
            subject = rnd.choice(subjects)
            header = {
                "event_id": str(event_id), "type": "tool_call", "schema": "sealtrail.tool_call/v1",
                "occurred_at": occurred.isoformat(), "received_at": received.isoformat(),
                "agent_id": agent, "session_id": session, "server_id": server, "tool_name": tool,
                "tool_tier": "write", "decision": "allow", "status": "ok", "latency_ms": 120,
                "payload_digest": os.urandom(32).hex(), "key_ids": [period, subject], "index": i,
                "ingest_key_id": "ik_" + os.urandom(8).hex(), "gateway": "gw-eu-1", "cost": {"micros": 42},
                "labels": {"env": "prod", "region": "eu-west-1", "app": "billing-assistant"},
            }
            entry = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
            entry += b" " * max(0, 700 - len(entry))  # pad to ~700 B, as the real headers are
            ents.append((LOG_ID, i, TENANT, event_id, "tool_call", occurred, received, agent, session,
                         server, tool, "write", "allow", "ok", 120, 42, entry, os.urandom(32), os.urandom(32)))
            pays.append((LOG_ID, i, TENANT, [period, subject], os.urandom(12), os.urandom(1100)))
        end = first + len(ents)
        nodes = [(LOG_ID, level, idx, os.urandom(32))
                 for level in range(1, end.bit_length() + 1)
                 for idx in range(first >> level, end >> level) if (idx + 1) << level > first]
        out.batches.append((first, ents, pays, nodes))
    return out


def _db_url(url: str, db: str) -> str:
    return url.rsplit("/", 1)[0] + "/" + db


async def prepare(admin_url: str, db: str, variant: Variant) -> None:
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f"CREATE DATABASE {db}")
    finally:
        await admin.close()
    conn = await asyncpg.connect(_db_url(admin_url, db))
    try:
        await migrate(conn)
        for sql in variant.ddl:
            await conn.execute(sql)
        for t in TABLES:
            await conn.execute(f"ALTER TABLE {t} SET (autovacuum_enabled = off)")
        await conn.execute("INSERT INTO tenants (tenant_id, index_key, index_key_kek) VALUES ($1, $2, 'bench')",
                           TENANT, os.urandom(72))
        await conn.execute("INSERT INTO logs (log_id, tenant_id, origin, size, root, chain_head, compact)"
                           " VALUES ($1, $2, 'bench.example/log', 0, $3, $3, $3)", LOG_ID, TENANT, b"\0" * 32)
        await conn.execute("INSERT INTO consumer_offsets VALUES ('g', 't', 0, 0)")
    finally:
        await conn.close()


async def load(conn: asyncpg.Connection, variant: Variant, rows: Rows) -> None:
    """One transaction per batch, with the statements of the ledger's commit."""
    offset = 0
    for first, ents, pays, nodes in rows.batches:
        end = first + len(ents)
        async with conn.transaction():
            await conn.execute("UPDATE consumer_offsets SET next_offset = $2 WHERE group_id = 'g'"
                               " AND topic = 't' AND partition = 0 AND next_offset = $1", offset, end)
            await conn.execute("UPDATE logs SET size = $2, root = $3, chain_head = $3, compact = $4,"
                               " updated_at = now() WHERE log_id = $1 AND size = $5",
                               LOG_ID, end, os.urandom(32), os.urandom(32 * 18), first)
            await conn.copy_records_to_table("entries", records=ents, columns=_ENTRY_COLUMNS)
            await conn.copy_records_to_table("payloads", records=pays, columns=_PAYLOAD_COLUMNS)
            if variant.nodes != "every":
                nodes = [n for n in nodes if variant.nodes == "stride" and stored_level(n[1])]
            if nodes:
                await conn.copy_records_to_table("tree_nodes", records=nodes, columns=_NODE_COLUMNS)
            await conn.execute(
                "INSERT INTO batches (log_id, first_idx, count, batch_root, tree_size, tree_root, chain_head)"
                " VALUES ($1, $2, $3, $4, $5, $4, $4)", LOG_ID, first, len(ents), os.urandom(32), end)
        offset = end


async def sizes(url: str) -> dict[str, int]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT c.relname, pg_relation_size(c.oid) AS b FROM pg_class c"
                                " JOIN pg_namespace n ON n.oid = c.relnamespace"
                                " WHERE n.nspname = 'public' AND c.relkind IN ('r', 'i')"
                                " AND pg_relation_size(c.oid) > 1048576")
        return {r["relname"]: r["b"] for r in rows}
    finally:
        await conn.close()


async def one_run(pg: PostgresServer, variant: Variant, rows: Rows, n: int, tag: str) -> dict[str, Any]:
    db = f"w_{variant.name}_{tag}"
    url = _db_url(pg.url, db)
    await prepare(pg.url, db, variant)
    admin = await asyncpg.connect(pg.url)
    conn = await asyncpg.connect(url)
    try:
        for sql in variant.session:
            await conn.execute(sql)
        await admin.execute("CHECKPOINT")
        pid = pg.pid()
        assert pid is not None
        # No server process may exit inside the window: an exited one that the postmaster has not
        # reaped yet is in neither its own nor its parent's counters. Hence one connection for
        # the load and the vacuum, and a pause for the backends of prepare() to be reaped.
        await asyncio.sleep(1)
        lsn0 = await admin.fetchval(_LSN)
        cpu0, t0 = tree_cpu_s(pid), time.perf_counter()
        await load(conn, variant, rows)
        cpu1, t1 = tree_cpu_s(pid), time.perf_counter()
        lsn1 = await admin.fetchval(_LSN)
        await conn.execute("VACUUM " + ", ".join(TABLES))
        cpu2 = tree_cpu_s(pid)
        await conn.close()
        rel = await sizes(url)
        await admin.execute(f"DROP DATABASE {db}")
        await admin.execute("CHECKPOINT")
    finally:
        await conn.close()
        await admin.close()
    return {"variant": variant.name, "cpu_us": (cpu1 - cpu0) / n * 1e6, "cpu_vacuum_us": (cpu2 - cpu0) / n * 1e6,
            "wall_us": (t1 - t0) / n * 1e6, "wal_b": (lsn1 - lsn0) / n, "sizes": rel}


def run_all(pg: PostgresServer, names: list[str], rows: Rows, n: int, rounds: int,
            say: Callable[[str], None]) -> list[dict[str, Any]]:
    # The first run after the server starts is slower whatever its variant (cold caches, new files).
    asyncio.run(one_run(pg, VARIANTS["full"], rows, n, "warmup"))
    results = []
    for r in range(rounds):
        order = names if r % 2 == 0 else list(reversed(names))
        for name in order:
            res = asyncio.run(one_run(pg, VARIANTS[name], rows, n, f"r{r}"))
            res["round"] = r
            results.append(res)
            say(f"  round {r} {name:20s} PG CPU {res['cpu_us']:6.1f} µs/entry"
                f" (+vacuum {res['cpu_vacuum_us']:6.1f})  wall {res['wall_us']:6.1f} µs/entry"
                f"  WAL {res['wal_b']:6.0f} B/entry")
    return results


def summary(results: list[dict[str, Any]], names: list[str]) -> list[dict[str, Any]]:
    out = []
    for name in names:
        runs = [r for r in results if r["variant"] == name]
        out.append({
            "variant": name, "note": VARIANTS[name].note,
            "cpu_us": [round(r["cpu_us"], 1) for r in runs],
            "cpu_vacuum_us": [round(r["cpu_vacuum_us"], 1) for r in runs],
            "wall_us": [round(r["wall_us"], 1) for r in runs],
            "cpu_us_median": round(statistics.median(r["cpu_us"] for r in runs), 1),
            "wal_b": [round(r["wal_b"]) for r in runs],
            "sizes_mib": {k: round(v / 2**20) for k, v in sorted(runs[-1]["sizes"].items())},
        })
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--variants", default=",".join(DEFAULT_VARIANTS),
                        help="comma-separated, of: " + ", ".join(VARIANTS))
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    names = args.variants.split(",")
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants: {unknown}")
    print(f"building {args.entries:,} synthetic entries ...", flush=True)
    rows = build_rows(args.entries, args.batch)
    work = Path(tempfile.mkdtemp(prefix="sealtrail-pgw-"))
    pg = PostgresServer(datadir=work / "pg", durable=True)
    pg.start()
    try:
        results = run_all(pg, names, rows, args.entries, args.rounds, lambda s: print(s, flush=True))
    finally:
        pg.stop()
        shutil.rmtree(work, ignore_errors=True)
    table = summary(results, names)
    out = {"machine": describe("asyncpg"), "entries": args.entries, "batch": args.batch,
           "rounds": args.rounds, "variants": table, "runs": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2, default=str) + "\n")
    print(f"\n{'variant':20s} {'PG CPU µs/entry':>20s} {'+vacuum':>16s} {'wall µs/entry':>18s}")
    for v in table:
        print(f"{v['variant']:20s} {' / '.join(map(str, v['cpu_us'])):>20s}"
              f" {' / '.join(map(str, v['cpu_vacuum_us'])):>16s} {' / '.join(map(str, v['wall_us'])):>18s}")


if __name__ == "__main__":
    main()
