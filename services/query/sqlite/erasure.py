""":class:`~services.query.ports.ErasureStore` in the embedded SQLite database.

Every statement names the tenant (SQLite has no row-level security). Setting a hold and starting
an erasure are write transactions on the database's single writer thread, so they are serialised
without the advisory lock PostgreSQL needs. Ciphertexts sealed under a key are found through
``payload_keys`` (SQLite has no GIN index and ``payloads`` no copy of the key ids); their
``payload_keys`` rows go with them. After the deletions the WAL is checkpointed and truncated, as
the key store does after erasing a key, so no WAL frame keeps a deleted row.
"""

from __future__ import annotations

import sqlite3
import uuid
from datetime import datetime
from typing import Any

import orjson

from sealtrail.errors import ConflictError, LegalHoldError, NotFoundError
from sealtrail.infra.sqlite import SqliteDatabase, db_now, from_db_time, from_db_time_or_none, to_db_time, translated
from services.query.ports import ErasureRecord

_COLUMNS = ("request_ref, history_ref, legal_basis, requested_by, state, erased_key_ids, payloads_deleted,"
            " index_rows_deleted, event_id, requested_at, erased_at, caches_clear_by, receipt")


def _record(row: tuple[Any, ...] | None) -> ErasureRecord:
    if row is None:
        raise NotFoundError("the erasure request vanished while it ran")
    (ref, href, basis, by, state, keys, payloads, rows, event_id, requested, erased, clear_by, receipt) = row
    return ErasureRecord(ref, bytes(href), basis, by, state, tuple(orjson.loads(keys)), payloads, rows,
                         event_id, from_db_time(requested), from_db_time_or_none(erased),
                         from_db_time_or_none(clear_by), receipt)


def _get(conn: sqlite3.Connection, tenant: str, request_ref: str) -> ErasureRecord | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM subject_erasures WHERE tenant_id = ? AND request_ref = ?",
                       (tenant, request_ref)).fetchone()
    return None if row is None else _record(row)


def _json(values: list[str]) -> str:
    return orjson.dumps(values).decode()


def _begin(conn: sqlite3.Connection, tenant: str, request_ref: str, href: bytes, subject_ref: bytes,
           legal_basis: str, requested_by: str) -> ErasureRecord:
    found = _get(conn, tenant, request_ref)
    if found is not None:
        if found.history_ref != href:
            raise ConflictError("the request reference was used for another subject")
        return found
    hold = conn.execute("SELECT reason FROM subject_holds WHERE tenant_id = ? AND history_ref = ?",
                        (tenant, href)).fetchone()
    if hold is not None:
        raise LegalHoldError(f"the subject is under legal hold ({hold[0]}); it cannot be erased")
    key_ids = sorted(k for (k,) in conn.execute(
        "SELECT key_id FROM data_keys WHERE tenant_id = ? AND kind = 'subject' AND subject_ref = ?"
        " AND state = 'active'", (tenant, subject_ref)))
    return _record(conn.execute(
        "INSERT INTO subject_erasures (tenant_id, request_ref, history_ref, legal_basis, requested_by,"
        f" erased_key_ids, requested_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING {_COLUMNS}",
        (tenant, request_ref, href, legal_basis, requested_by, _json(key_ids), db_now())).fetchone())


def delete_sealed_under(conn: sqlite3.Connection, tenant: str, key_ids: list[str], *,
                        first_only: bool = False, limit: int = -1) -> int:
    """Delete the tenant's ciphertexts sealed under any of ``key_ids`` (with ``first_only``: whose
    first key id, the period key, is one of them), at most ``limit``; return how many."""
    # The payload's first key id is the entry's (the ledger stores them in the header's order).
    first = (" JOIN entries e ON e.log_id = p.log_id AND e.idx = p.idx"
             " AND json_extract(CAST(e.entry AS TEXT), '$.key_ids[0]') = k.key_id") if first_only else ""
    targets = conn.execute(
        "SELECT DISTINCT p.log_id, p.idx FROM payload_keys k JOIN payloads p"
        f" ON p.log_id = k.log_id AND p.idx = k.idx{first}"
        " WHERE k.key_id IN (SELECT value FROM json_each(?)) AND p.tenant_id = ? LIMIT ?",
        (_json(key_ids), tenant, limit)).fetchall()
    conn.executemany("DELETE FROM payloads WHERE log_id = ? AND idx = ? AND tenant_id = ?",
                     [(log_id, idx, tenant) for log_id, idx in targets])
    conn.executemany("DELETE FROM payload_keys WHERE log_id = ? AND idx = ?", targets)
    return len(targets)


def _delete_data(conn: sqlite3.Connection, tenant: str, request_ref: str, subject_ref: bytes,
                 key_ids: list[str], event_id: str, erased_at: datetime, clear_by: datetime) -> ErasureRecord:
    payloads = delete_sealed_under(conn, tenant, key_ids)
    # Every row of the subject's keys carries its subject_ref (the projector writes it from
    # data_keys), so the primary key finds them all (migration 0015).
    rows = conn.execute("DELETE FROM subject_index WHERE tenant_id = ? AND subject_ref = ?",
                        (tenant, subject_ref)).rowcount
    current = _get(conn, tenant, request_ref)
    if current is None:
        raise NotFoundError("the erasure request vanished while it ran")
    merged = sorted({*current.erased_key_ids, *key_ids})
    clear = to_db_time(clear_by)
    return _record(conn.execute(
        "UPDATE subject_erasures SET erased_key_ids = ?, payloads_deleted = payloads_deleted + ?,"
        " index_rows_deleted = index_rows_deleted + ?, event_id = coalesce(event_id, ?),"
        " erased_at = coalesce(erased_at, ?), caches_clear_by = max(coalesce(caches_clear_by, ?), ?)"
        f" WHERE tenant_id = ? AND request_ref = ? RETURNING {_COLUMNS}",
        (_json(merged), payloads, rows, str(uuid.UUID(event_id)), to_db_time(erased_at), clear, clear,
         tenant, request_ref)).fetchone())


def _release(conn: sqlite3.Connection, tenant: str, href: bytes, reason: str, released_by: str, now: str) -> bool:
    moved = conn.execute(
        "INSERT INTO subject_hold_releases (tenant_id, history_ref, reason, case_ref, set_by, set_at,"
        " release_reason, released_by, released_at) SELECT tenant_id, history_ref, reason, case_ref, set_by,"
        " set_at, ?3, ?4, ?5 FROM subject_holds WHERE tenant_id = ?1 AND history_ref = ?2",
        (tenant, href, reason, released_by, now)).rowcount
    conn.execute("DELETE FROM subject_holds WHERE tenant_id = ? AND history_ref = ?", (tenant, href))
    return moved > 0


class SqliteErasureStore:
    """The erasure and hold tables of SQLite migration 0005, and the deletions an erasure makes."""

    def __init__(self, *, db: SqliteDatabase) -> None:
        self._db = db

    async def begin(self, tenant: str, *, request_ref: str, href: bytes, subject_ref: bytes,
                    legal_basis: str, requested_by: str) -> ErasureRecord:
        with translated("start erasure"):
            return await self._db.write(lambda c: _begin(c, tenant, request_ref, href, subject_ref,
                                                         legal_basis, requested_by))

    async def delete_data(self, tenant: str, *, request_ref: str, subject_ref: bytes, key_ids: list[str],
                          event_id: str, erased_at: datetime, clear_by: datetime) -> ErasureRecord:
        with translated("erase subject data"):
            record = await self._db.write(lambda c: _delete_data(c, tenant, request_ref, subject_ref, key_ids,
                                                                 event_id, erased_at, clear_by))
            await self._db.truncate_wal()
        return record

    async def finish(self, tenant: str, request_ref: str, receipt: str) -> ErasureRecord:
        with translated("finish erasure"):
            return await self._db.write(lambda c: _record(c.execute(
                "UPDATE subject_erasures SET state = 'done', receipt = ? WHERE tenant_id = ? AND request_ref = ?"
                f" RETURNING {_COLUMNS}", (receipt, tenant, request_ref)).fetchone()))

    async def set_hold(self, tenant: str, href: bytes, *, reason: str, case_ref: str | None,
                       set_by: str) -> None:
        now = db_now()
        with translated("set legal hold"):
            await self._db.write(lambda c: c.execute(
                "INSERT INTO subject_holds (tenant_id, history_ref, reason, case_ref, set_by, set_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (tenant_id, history_ref) DO UPDATE"
                " SET reason = excluded.reason, case_ref = excluded.case_ref, set_by = excluded.set_by,"
                " set_at = excluded.set_at", (tenant, href, reason, case_ref, set_by, now)))

    async def clear_hold(self, tenant: str, href: bytes, *, reason: str, released_by: str) -> bool:
        now = db_now()
        with translated("release legal hold"):
            return await self._db.write(lambda c: _release(c, tenant, href, reason, released_by, now))

    async def released_holds(self, tenant: str, href: bytes, limit: int) -> list[dict[str, Any]]:
        with translated("read released legal holds"):
            rows = await self._db.read(lambda c: c.execute(
                "SELECT reason, case_ref, set_by, set_at, release_reason, released_by, released_at"
                " FROM subject_hold_releases WHERE tenant_id = ? AND history_ref = ?"
                " ORDER BY released_at DESC LIMIT ?", (tenant, href, limit)).fetchall())
        return [{"reason": r[0], "case_ref": r[1], "set_by": r[2], "set_at": from_db_time(r[3]).isoformat(),
                 "release_reason": r[4], "released_by": r[5], "released_at": from_db_time(r[6]).isoformat()}
                for r in rows]

    async def history(self, tenant: str, *, href: bytes | None, request_ref: str | None,
                      limit: int) -> list[ErasureRecord]:
        with translated("read erasure history"):
            rows = await self._db.read(lambda c: c.execute(
                f"SELECT {_COLUMNS} FROM subject_erasures WHERE tenant_id = ?1"
                " AND (?2 IS NULL OR history_ref = ?2) AND (?3 IS NULL OR request_ref = ?3)"
                " ORDER BY requested_at DESC, request_ref LIMIT ?4", (tenant, href, request_ref, limit)).fetchall())
        return [_record(r) for r in rows]

    async def hold(self, tenant: str, href: bytes) -> dict[str, Any] | None:
        with translated("read legal hold"):
            row = await self._db.read(lambda c: c.execute(
                "SELECT reason, case_ref, set_by, set_at FROM subject_holds WHERE tenant_id = ? AND history_ref = ?",
                (tenant, href)).fetchone())
        if row is None:
            return None
        return {"reason": row[0], "case_ref": row[1], "set_by": row[2], "set_at": from_db_time(row[3]).isoformat()}
