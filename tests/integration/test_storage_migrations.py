"""The storage migrations on databases that hold data. 0015: SQLite's payloads lose their copy of
the key ids, subject_index becomes WITHOUT ROWID and entries_event goes; PostgreSQL's
entries_session becomes a deduplicated (tenant_id, session_id) index. 0016: SQLite's entries lose
received_at. 0017: SQLite's entries.occurred_at becomes integer microseconds. 0018: subject_index
loses occurred_at. Rows survive, and the lookups that used what went are still planned on an
index."""

from __future__ import annotations

import functools
import sqlite3
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import orjson

from sealtrail.infra.micros import from_micros, to_micros
from sealtrail.infra.migrations import load
from sealtrail.infra.postgres import migrate_url
from sealtrail.infra.sqlite import _migrate, from_db_time, open_database
from services.ledger.sqlite import reader as ledger_reader_sqlite
from services.query.ports import CallFilter
from services.query.postgres import investigations
from services.query.sqlite import investigations as investigations_sqlite

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
PERIOD, SUBJECT_A, SUBJECT_B = "aa" * 16, "bb" * 16, "cc" * 16


def _header(tenant: str, idx: int, event_id: str, key_ids: list[str]) -> bytes:
    return orjson.dumps({"event_id": event_id, "index": idx, "key_ids": key_ids, "tenant": tenant,
                         "type": "tool_call"}, option=orjson.OPT_SORT_KEYS)


def _old_sqlite(path: Path, before: int = 15) -> list[tuple[str, int, str, str, list[str]]]:
    """A database with the migrations before ``before``, holding entries, payloads (key ids
    included), payload keys and subject index rows of two tenants; returns the entries written."""
    rows = [("acme", i, "acme", str(uuid.uuid4()), [PERIOD, SUBJECT_A if i % 2 else SUBJECT_B]) for i in range(6)]
    rows.append(("other", 0, "other", str(uuid.uuid4()), [PERIOD]))
    with sqlite3.connect(path, isolation_level=None) as conn:
        _migrate(conn, [m for m in load("sqlite") if m.version < before])
        conn.executemany("INSERT INTO logs (log_id, tenant_id, origin, root, chain_head, compact)"
                         " VALUES (?, ?, ?, x'00', x'00', x'00')",
                         [("acme", "acme", "o/acme"), ("other", "other", "o/other")])
        for log_id, idx, tenant, event_id, keys in rows:
            at = (T0 + timedelta(seconds=idx)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            conn.execute("INSERT INTO entries (log_id, idx, tenant_id, event_id, type, occurred_at, received_at,"
                         " entry, leaf, chain) VALUES (?, ?, ?, ?, 'tool_call', ?, ?, ?, ?, ?)",
                         (log_id, idx, tenant, event_id, at, at, _header(tenant, idx, event_id, keys),
                          bytes([idx]) * 32, bytes([idx + 1]) * 32))
            if before > 15:
                conn.execute("INSERT INTO payloads (log_id, idx, tenant_id, nonce, ciphertext) VALUES (?, ?, ?, ?, ?)",
                             (log_id, idx, tenant, bytes([idx]) * 24, b"sealed-%d" % idx))
            else:
                conn.execute("INSERT INTO payloads (log_id, idx, tenant_id, key_ids, nonce, ciphertext)"
                             " VALUES (?, ?, ?, ?, ?, ?)", (log_id, idx, tenant, orjson.dumps(keys).decode(),
                                                            bytes([idx]) * 24, b"sealed-%d" % idx))
            conn.executemany("INSERT INTO payload_keys (key_id, log_id, idx) VALUES (?, ?, ?)",
                             [(k, log_id, idx) for k in keys])
            for k in keys[1:]:
                conn.execute("INSERT INTO subject_index (tenant_id, subject_ref, key_id, log_id, idx, occurred_at)"
                             " VALUES (?, ?, ?, ?, ?, ?)", (tenant, bytes.fromhex(k), k, log_id, idx, at))
    conn.close()
    return rows


def _plan(conn: sqlite3.Connection, sql: str, args: tuple[object, ...]) -> str:
    return " | ".join(str(r[-1]) for r in conn.execute("EXPLAIN QUERY PLAN " + sql, args))


async def test_sqlite_database_with_data_migrates_and_keeps_its_lookups_on_indexes(tmp_path: Path) -> None:
    """Every payload and subject index row survives 0015 (the key ids stay in the entry bytes);
    lookups by event id and by subject are planned on the remaining unique and primary keys."""
    path = tmp_path / "s.db"
    rows = _old_sqlite(path)
    db = await open_database(path)  # migrates on open
    try:
        reader = investigations_sqlite.SqliteInvestigationReader(db=db)
        _, idx, _, event_id, keys = rows[3]
        call = await reader.call_by_event_id("acme", uuid.UUID(event_id), with_payload=True)
        assert call is not None and call.found.idx == idx
        assert (call.key_ids, call.nonce, call.ciphertext) == (tuple(keys), bytes([idx]) * 24, b"sealed-3")
        assert await reader.call_by_event_id("acme", uuid.UUID(rows[-1][3]), with_payload=False) is None
        assert await reader.call_by_event_id("other", uuid.UUID(rows[-1][3]), with_payload=False) is not None
        subject_calls, more = await reader.subject_calls("acme", bytes.fromhex(SUBJECT_A), None, 10)
        assert [c.found.idx for c in subject_calls] == [1, 3, 5] and not more
        assert {c.subject_key_id for c in subject_calls} == {SUBJECT_A}
    finally:
        await db.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT max(version) FROM schema_migrations").fetchone()[0] >= 15
        assert [r[1] for r in conn.execute("PRAGMA table_info(payloads)")] == [
            "log_id", "idx", "tenant_id", "nonce", "ciphertext"]
        assert conn.execute("SELECT count(*) FROM payloads").fetchone()[0] == len(rows)
        assert conn.execute("SELECT count(*) FROM subject_index").fetchone()[0] == len(rows) - 1
        schema = dict(conn.execute("SELECT name, sql FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%'"))
        assert "WITHOUT ROWID" in schema["subject_index"]
        assert [r[1] for r in conn.execute("PRAGMA table_info(subject_index)")] == [  # 0018
            "tenant_id", "subject_ref", "key_id", "log_id", "idx"]
        assert "entries_event" not in schema and "subject_index_key" not in schema
        by_event = _plan(conn, ledger_reader_sqlite.EVENT_SQL, ("acme", "acme", rows[0][3]))
        assert "sqlite_autoindex_entries_2" in by_event, by_event
        by_event = _plan(conn, "SELECT e.idx FROM entries e" + investigations_sqlite.EVENT_WHERE,
                         ("acme", "acme", rows[0][3]))
        assert "sqlite_autoindex_entries_2" in by_event, by_event
        erase = _plan(conn, "DELETE FROM subject_index WHERE tenant_id = ? AND subject_ref = ?",
                      ("acme", bytes.fromhex(SUBJECT_A)))
        assert "PRIMARY KEY" in erase, erase
    conn.close()


async def test_sqlite_entries_lose_received_at_and_store_occurred_at_as_microseconds(tmp_path: Path) -> None:
    """0016 and 0017 on a database at 0015 with entries: every row and its entry bytes stay,
    received_at goes, occurred_at is the same instant in microseconds, and a time-range search
    reads entries_time."""
    path = tmp_path / "s.db"
    rows = _old_sqlite(path, before=16)
    cols = "log_id, idx, event_id, entry, leaf, chain"
    with sqlite3.connect(path) as conn:
        stored = conn.execute(f"SELECT {cols} FROM entries ORDER BY log_id, idx").fetchall()
        texts = [t for (t,) in conn.execute("SELECT occurred_at FROM entries ORDER BY log_id, idx")]
    conn.close()
    db = await open_database(path)  # migrates on open
    try:
        reader = investigations_sqlite.SqliteInvestigationReader(db=db)
        found, _ = await reader.search_calls("acme", CallFilter({}, T0 + timedelta(seconds=2),
                                                                T0 + timedelta(seconds=4)), None, 10)
        assert [(f.idx, f.occurred_at) for f in found] == [(3, T0 + timedelta(seconds=3)),
                                                          (2, T0 + timedelta(seconds=2))]
    finally:
        await db.close()
    with sqlite3.connect(path) as conn:
        names = [r[1] for r in conn.execute("PRAGMA table_info(entries)")]
        assert "received_at" not in names
        assert conn.execute(f"SELECT {cols} FROM entries ORDER BY log_id, idx").fetchall() == stored
        micros = [m for (m,) in conn.execute("SELECT occurred_at FROM entries ORDER BY log_id, idx")]
        assert [from_micros(m) for m in micros] == [from_db_time(t) for t in texts] and len(micros) == len(rows)
        indexes = {n for (n,) in conn.execute("SELECT name FROM sqlite_schema WHERE tbl_name = 'entries'")}
        assert {"entries_agent", "entries_session", "entries_tool", "entries_server", "entries_time",
                "entries_system_events", "sqlite_autoindex_entries_1", "sqlite_autoindex_entries_2"} <= indexes
        plan = _plan(conn, "SELECT idx FROM entries WHERE tenant_id = ? AND occurred_at >= ? AND occurred_at < ?"
                     " ORDER BY occurred_at DESC LIMIT 5", ("acme", to_micros(T0), to_micros(T0) + 10))
        assert "entries_time" in plan, plan
    conn.close()


async def test_sqlite_session_timeline_reads_the_session_index(tmp_path: Path) -> None:
    """The session timeline reads entries_session (the session's rows, then a sort), never a walk
    of the tenant's entries in time order, with or without a keyset position."""
    db = await open_database(tmp_path / "s.db")
    try:
        for after in ("", " AND (e.occurred_at, e.log_id, e.idx) > (?, ?, ?)"):
            sql = investigations_sqlite.SESSION_SQL.format(entry="e.idx", after=after)
            args: tuple[object, ...] = ("acme", "s1", *((1, "acme", 2) if after else ()), 51)
            plan = await db.read(functools.partial(_plan, sql=sql, args=args))
            assert "USING INDEX entries_session" in plan and "entries_time" not in plan, plan
    finally:
        await db.close()


_OLD_SESSION_INDEX = (
    "CREATE INDEX entries_session_old ON entries (tenant_id, session_id, idx) WHERE session_id IS NOT NULL;"
    " DROP INDEX entries_session; ALTER INDEX entries_session_old RENAME TO entries_session;"
    " ALTER INDEX entries_pkey RESET (fillfactor); ALTER INDEX payloads_pkey RESET (fillfactor);"
    " DELETE FROM schema_migrations WHERE version = 15")


async def test_postgres_session_index_is_rebuilt_deduplicated_and_serves_the_timeline(fresh_db_url: str) -> None:
    """With entries stored under the old (tenant_id, session_id, idx) index, 0015 builds the
    (tenant_id, session_id) one; the session timeline reads it and returns the same order."""
    await migrate_url(fresh_db_url)
    conn = await asyncpg.connect(fresh_db_url)
    try:
        await conn.execute(_OLD_SESSION_INDEX)
        await conn.executemany(
            "INSERT INTO entries (log_id, idx, tenant_id, event_id, type, occurred_at, received_at, session_id,"
            " entry, leaf, chain) VALUES ('acme', $1, 'acme', $2, 'tool_call', $3, $3, $4, $5, $6, $6)",
            [(i, uuid.uuid4(), T0 + timedelta(seconds=(i * 7) % 20), f"s{i % 3}", b"{}", bytes(32))
             for i in range(20)])
        assert await migrate_url(fresh_db_url) == [15]
        assert "occurred_at" not in {r[0] for r in await conn.fetch(  # 0018
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'subject_index'")}
        defs = {r[0]: r[1] for r in await conn.fetch(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'entries'")}
        assert defs["entries_session"].endswith("(tenant_id, session_id) WHERE (session_id IS NOT NULL)")
        options = {r[0]: r[1] for r in await conn.fetch(
            "SELECT relname, reloptions FROM pg_class WHERE relname IN ('entries_pkey', 'payloads_pkey')")}
        assert options == {"entries_pkey": ["fillfactor=100"], "payloads_pkey": ["fillfactor=100"]}
        found, more = await investigations.session_timeline(conn, "acme", "s1", None, 50)
        assert [f.idx for f in found] == sorted(
            (i for i in range(20) if i % 3 == 1), key=lambda i: ((i * 7) % 20, i)) and not more
        await conn.execute("ANALYZE entries")
        async with conn.transaction():
            await conn.execute("SET LOCAL enable_seqscan = off")  # 20 rows would be scanned anyway
            plan = "\n".join(r[0] for r in await conn.fetch(
                "EXPLAIN SELECT idx FROM entries e WHERE e.tenant_id = $1 AND e.session_id = $2"
                " ORDER BY e.occurred_at, e.log_id, e.idx LIMIT 51", "acme", "s1"))
        assert "entries_session" in plan, plan
    finally:
        await conn.close()
