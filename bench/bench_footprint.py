"""Storage footprint benchmark: bytes per event on disk, by table, index, TOAST, local log and WAL.

Usage: ``python bench/bench_footprint.py [--events N] [--backend sqlite|postgres|both]``

- SQLite: starts ``sealtrail serve`` on a fresh data directory, sends about N events of ~1 KiB
  (batches of 500 on two connections, as ``bench/bench_embedded.py`` does), waits until all are
  sequenced and signed, then measures every b-tree of the database (the ``dbstat`` virtual table:
  pages in use per table and per index, overflow pages included), the database file, its WAL and
  the local log. "Before": the server still running, as it stands after the load. "After": the
  server stopped, the WAL checkpointed and truncated, and the local log trimmed of every segment the
  ledger has committed (what the retention pass does once segments are old enough).
- PostgreSQL: starts a durable cluster, loads N sealed events of ~1 KiB through the ledger's own
  sequencer and store and the projector (as ``bench/query_load.py`` does, with a subject on every
  event and the payload of the 1 KiB tool call that the SQLite run sends), ``VACUUM ANALYZE``,
  then measures per table its heap, each index (``pg_relation_size``) and its TOAST (table and
  index), and ``pg_wal``; "after" follows a ``CHECKPOINT`` (recycled WAL segments removed).

Prints the breakdown and writes bench/results/footprint.json with the machine, versions and the
load average. Figures are bytes on disk divided by the number of events.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg

from bench.machine import describe
from sealtrail.cli.bench import receipt_verifiers
from sealtrail.cli.benchload import AnswerCheck, Load, send
from tests.support.serve import start_serve

RESULTS = Path(__file__).resolve().parent / "results" / "footprint.json"
PACKAGES = ("orjson", "pynacl", "blake3", "asyncpg")
RATE = 5000.0
EVENT_BYTES = 1024


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def dir_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) if root.exists() else 0


def per_event(sizes: dict[str, int], events: int) -> dict[str, float]:
    """Bytes per event by name, largest first; those under 1 byte per event summed as ``(others)``."""
    out: dict[str, float] = {}
    others = 0
    for name, size in sorted(sizes.items(), key=lambda kv: -kv[1]):
        if size >= events:
            out[name] = round(size / events, 1)
        else:
            others += size
    if others:
        out["(others)"] = round(others / events, 1)
    return out


# ---- SQLite (sealtrail serve) ----------------------------------------------------------------------


def sqlite_btrees(db: Path) -> dict[str, dict[str, int]]:
    """Bytes in use per b-tree (``dbstat``), split into tables and indexes (autoindexes included)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        kinds = dict(conn.execute("SELECT name, type FROM sqlite_schema WHERE type IN ('table', 'index')"))
        rows = conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name").fetchall()
    finally:
        conn.close()
    out: dict[str, dict[str, int]] = {"table": {}, "index": {}}
    for name, size in rows:
        out["index" if kinds.get(name) == "index" else "table"][name] = int(size)
    return out


def sqlite_state(data_dir: Path, events: int) -> dict[str, Any]:
    db = data_dir / "sealtrail.db"
    btrees = sqlite_btrees(db)
    files = {"database_file": db.stat().st_size, "wal_file": _size(db.with_name(db.name + "-wal")),
             "local_log": dir_bytes(data_dir / "log")}
    tables, indexes = sum(btrees["table"].values()), sum(btrees["index"].values())
    return {"load_average_1_5_15": load_average(), "bytes": files,
            "per_event": {"tables": round(tables / events, 1), "indexes": round(indexes / events, 1),
                          **{k: round(v / events, 1) for k, v in files.items()},
                          "on_disk_total": round(sum(files.values()) / events, 1)},
            "tables_per_event": per_event(btrees["table"], events),
            "indexes_per_event": per_event(btrees["index"], events)}


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def _sequenced(db: Path) -> tuple[int, int]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        size = conn.execute("SELECT coalesce(sum(size), 0) FROM logs").fetchone()[0]
        signed = conn.execute("SELECT coalesce(max(tree_size), 0) FROM checkpoints").fetchone()[0]
        return int(size), int(signed)
    finally:
        conn.close()


async def _trim_local_log(data_dir: Path) -> int:
    """What the retention pass frees once every segment is old enough (``max_age_s=0``)."""
    from sealtrail.cli.embedded.ledger import LEDGER_GROUP
    from sealtrail.cli.embedded.logretention import trim_once
    from sealtrail.infra.locallog import opened
    from sealtrail.infra.sqlite import open_database
    from services.ledger.sqlite.store import SqliteLedgerStore

    db = await open_database(data_dir / "sealtrail.db")
    try:
        store = SqliteLedgerStore(db=db)

        async def committed(partitions: list[int]) -> dict[int, int]:
            return await store.load_offsets(group=LEDGER_GROUP, topic="sealtrail.sealed", partitions=partitions)

        async with opened(data_dir / "log") as local:
            return await trim_once(local, committed, max_age_s=0.0)
    finally:
        await db.close()


def run_sqlite(events: int, work: Path) -> dict[str, Any]:
    served = start_serve(work / "data", logs=work)
    try:
        started = time.perf_counter()
        load = Load(served.url, served.tokens["gateway"], events / RATE, 2, 500, EVENT_BYTES, RATE)
        sent = asyncio.run(_send(load, served.url))
        total = sum(len(ids) for _, ids in sent.accepted)
        db = served.data_dir / "sealtrail.db"
        while _sequenced(db)[1] < total:
            if time.perf_counter() - started > events / 500 + 300:
                raise TimeoutError(f"{total} accepted events were not all signed in time")
            time.sleep(0.5)
        load_s = time.perf_counter() - started
        before = sqlite_state(served.data_dir, total)
    finally:
        served.stop()
    conn = sqlite3.connect(served.data_dir / "sealtrail.db")
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    freed = asyncio.run(_trim_local_log(served.data_dir))
    after = sqlite_state(served.data_dir, total)
    return {"events": total, "load_s": round(load_s, 1), "local_log_trimmed_bytes": freed,
            "before": before, "after": after}


async def _send(load: Load, url: str) -> Any:
    return await send(load, AnswerCheck(await receipt_verifiers(url), 50))


# ---- PostgreSQL (the ledger's tables) --------------------------------------------------------------

PG_SIZES = """
SELECT c.relname AS name, pg_relation_size(c.oid) AS heap,
       coalesce(pg_total_relation_size(nullif(c.reltoastrelid, 0)), 0) AS toast,
       pg_table_size(c.oid) - pg_relation_size(c.oid)
         - coalesce(pg_total_relation_size(nullif(c.reltoastrelid, 0)), 0) AS maps
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND n.nspname = 'public'
"""
PG_INDEXES = """
SELECT i.relname AS name, t.relname AS tab, pg_relation_size(i.oid) AS size
FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace WHERE n.nspname = 'public'
"""


async def pg_state(pool: asyncpg.Pool, events: int) -> dict[str, Any]:
    rels = await pool.fetch(PG_SIZES)
    idx = await pool.fetch(PG_INDEXES)
    wal = int(await pool.fetchval("SELECT coalesce(sum(size), 0) FROM pg_ls_waldir()"))
    heap = {r["name"]: int(r["heap"]) for r in rels}
    toast = {r["name"]: int(r["toast"]) for r in rels if r["toast"]}
    maps = sum(int(r["maps"]) for r in rels)
    indexes = {f"{r['tab']}.{r['name']}": int(r["size"]) for r in idx}
    total = sum(heap.values()) + sum(toast.values()) + maps + sum(indexes.values())
    return {"load_average_1_5_15": load_average(), "bytes": {"relations": total, "wal": wal},
            "per_event": {"heap": round(sum(heap.values()) / events, 1),
                          "indexes": round(sum(indexes.values()) / events, 1),
                          "toast": round(sum(toast.values()) / events, 1), "fsm_vm": round(maps / events, 1),
                          "tables_indexes_toast": round(total / events, 1), "wal": round(wal / events, 1)},
            "heap_per_event": per_event(heap, events), "toast_per_event": per_event(toast, events),
            "indexes_per_event": per_event(indexes, events)}


async def load_padded(pool: asyncpg.Pool, key_dir: Path, *, events: int) -> None:
    """``events`` sealed tool calls of ~1 KiB plaintext, one of 100 subjects each, sequenced and
    committed through the ledger's store, checkpointed every 100,000, then projected."""
    from bench.query_load import TENANT, _provision
    from sealtrail.core.canonical import canonical_json
    from sealtrail.core.fields import format_timestamp
    from sealtrail.core.keystore import period_of
    from sealtrail.core.record import SealedRecord
    from sealtrail.core.sealing import Kek, seal_json, subject_ref
    from sealtrail.infra.keystore_postgres import PostgresKeyStore
    from sealtrail.sdk.events import uuid7
    from services.ledger.checkpointer import Checkpointer
    from services.ledger.ports import PartitionCommit
    from services.ledger.postgres.checkpoints import PostgresCheckpointStore
    from services.ledger.postgres.store import PostgresLedgerStore
    from services.ledger.sequencer import LogHead, origin_for, sequence
    from services.projector.postgres import PostgresProjectorStore
    from services.projector.projector import Projector

    kek = Kek(os.urandom(32))
    _, index_key = await _provision(pool, kek)
    keystore = PostgresKeyStore(pool=pool, kek=kek)
    now = datetime.now(UTC)
    period = await keystore.get_or_create_period_key(TENANT, period_of(now))
    subjects = [await keystore.get_or_create_subject_key(TENANT, subject_ref(index_key, f"user:c{n}@example.com"))
                for n in range(100)]
    store = PostgresLedgerStore(pool=pool)
    checkpointer = Checkpointer(store=PostgresCheckpointStore(pool=pool), key_dir=key_dir)
    await checkpointer.ensure_keys()
    head = LogHead.empty(log_id=TENANT, tenant_id=TENANT, origin=origin_for(TENANT))
    new_logs, pad = [head], "x" * (_payload_pad() - 8)
    for pos in range(0, events, 10_000):
        records = []
        for i in range(pos, min(pos + 10_000, events)):
            occurred = now - timedelta(seconds=events - i)
            event_id = uuid7(ms=int(occurred.timestamp() * 1000))
            plaintext = canonical_json({"args": {"query": f"{i:07d} {pad}"}, "result": {"rows": 3}})
            sealed = seal_json(plaintext, tenant=TENANT, event_id=event_id, type="tool_call", period_key=period,
                               subject_keys=[subjects[i % 100]])
            header = {"event_id": event_id, "type": "tool_call", "occurred_at": format_timestamp(occurred),
                      "received_at": format_timestamp(now), "tenant": TENANT, "gateway_id": "gw-1",
                      "agent_id": "agent-7", "session_id": f"sess-{i // 50}", "server_id": "srv-crm",
                      "tool_name": "crm.search", "tool_tier": "read", "decision": "allow", "status": "ok",
                      "latency_ms": 87, **sealed.header_fields()}
            records.append(SealedRecord(TENANT, header, sealed.nonce, sealed.ciphertext))
        batch = sequence(head, records)
        await store.commit(PartitionCommit("bench", "bench", 0, pos or None, pos + len(records), [batch], new_logs))
        head, new_logs = batch.after, []
        if head.size % 100_000 == 0 or head.size == events:
            await checkpointer.tick()
    await Projector(store=PostgresProjectorStore(pool=pool)).catch_up()


def _payload_pad() -> int:
    """The padding of the payload in the ~1 KiB tool call that ``sealtrail bench`` sends (the
    SQLite run), so that both backends store the same events."""
    from sealtrail.cli.benchload import event_templates
    from sealtrail.sdk.events import uuid7

    prefix, suffix = event_templates(EVENT_BYTES)[0]
    sent = json.loads(prefix + uuid7().encode() + suffix)
    return len(sent["payload"]["args"]["query"])


async def _pg_load(url: str, work: Path, events: int) -> tuple[float, dict[str, Any], dict[str, Any]]:
    from sealtrail.infra.postgres import migrate_url

    await migrate_url(url)
    pool = await asyncpg.create_pool(url, min_size=1, max_size=4)
    assert pool is not None
    try:
        started = time.perf_counter()
        await load_padded(pool, work / "keys", events=events)
        await pool.execute("VACUUM ANALYZE")
        load_s = time.perf_counter() - started
        before = await pg_state(pool, events)
        await pool.execute("CHECKPOINT")
        after = await pg_state(pool, events)
        return load_s, before, after
    finally:
        await pool.close()


def run_postgres(events: int, work: Path) -> dict[str, Any]:
    from sealtrail.devstack import PostgresServer

    pg = PostgresServer(datadir=work / "pg", durable=True)
    pg.start()
    try:
        load_s, before, after = asyncio.run(_pg_load(pg.url, work, events))
    finally:
        pg.stop()
    return {"events": events, "load_s": round(load_s, 1), "before": before, "after": after}


# ---- report ----------------------------------------------------------------------------------------


def show(name: str, result: dict[str, Any]) -> None:
    print(f"{name}: {result['events']:,} events, loaded in {result['load_s']} s")
    for phase in ("before", "after"):
        state = result[phase]
        print(f"  {phase} (load average {state['load_average_1_5_15']}): bytes per event {state['per_event']}")
    after = result["after"]
    for group in ("tables_per_event", "heap_per_event", "toast_per_event", "indexes_per_event"):
        if group in after:
            print(f"    {group}: {after[group]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sealtrail-bench-footprint-"))
    results: dict[str, Any] = {}
    try:
        if args.backend in ("sqlite", "both"):
            results["sqlite"] = run_sqlite(args.events, work)
            show("sqlite (sealtrail serve)", results["sqlite"])
        if args.backend in ("postgres", "both"):
            results["postgresql"] = run_postgres(args.events, work)
            show("postgresql (ledger tables, read models)", results["postgresql"])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    doc = {"benchmark": "footprint", "at": datetime.now(UTC).isoformat(timespec="seconds"),
           "machine": describe(*PACKAGES), "setup": {"events": args.events, "event_bytes": EVENT_BYTES,
                                                    "rate_sent_per_s": RATE}, "result": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
