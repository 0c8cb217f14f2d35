""":class:`~services.query.ports.ErasureStore` in PostgreSQL (tables of migration 0005, plus
the deletions).

Writes run as the service's own role and name the tenant in every statement. A per-subject
advisory lock serialises setting a hold and starting an erasure, so a subject cannot be put on
hold while its erasure slips past the check. Driver errors are translated here.

A DELETE leaves the deleted tuples' bytes in the table's pages, and a plain VACUUM frees their
space without overwriting all of it (a page compacts its live tuples, and whatever lay in the
freed gap stays until reused: measured, a quarter of the erased ciphertexts). So after the
deletions :meth:`PostgresErasureStore.delete_data` rewrites ``payloads`` (and its TOAST table)
as ``rewrite`` says: ``full`` (the default) runs ``VACUUM (FULL) payloads``, which writes a new
file and removes the old one, holding an ACCESS EXCLUSIVE lock on ``payloads`` meanwhile (the
ledger's commits wait; ingest goes on into Kafka) and needing room for a second copy;
``plain`` runs ``VACUUM payloads`` (no such lock; fragments can stay in free space); ``off``
leaves it to autovacuum. Either way the ciphertexts cannot be decrypted once the key is gone.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

import asyncpg

from sealtrail.errors import ConflictError, LegalHoldError, NotFoundError, UnavailableError
from sealtrail.infra.pgerrors import translated
from sealtrail.infra.postgres import Conn
from services.query.ports import ErasureRecord
from services.query.postgres.scope import tenant_scope

_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended('subject:' || $1 || ':' || encode($2, 'hex'), 0))"
_RECORD_COLUMNS = (
    "request_ref, history_ref, legal_basis, requested_by, state, erased_key_ids, payloads_deleted,"
    " index_rows_deleted, event_id, requested_at, erased_at, caches_clear_by, receipt"
)


def record_of(row: asyncpg.Record) -> ErasureRecord:
    return ErasureRecord(
        row["request_ref"], bytes(row["history_ref"]), row["legal_basis"], row["requested_by"], row["state"],
        tuple(row["erased_key_ids"]), row["payloads_deleted"], row["index_rows_deleted"],
        str(row["event_id"]) if row["event_id"] is not None else None, row["requested_at"],
        row["erased_at"], row["caches_clear_by"], row["receipt"],
    )


ErasureRewrite = Literal["full", "plain", "off"]
_REWRITES = {"full": "VACUUM (FULL) payloads", "plain": "VACUUM payloads"}
# How long the rewrite waits for its lock. Queued behind a long reader of payloads, it would hold
# up every ledger commit (they queue behind it); the erasure is answered 503 instead, repeatable.
REWRITE_LOCK_TIMEOUT_MS = 5000


class PostgresErasureStore:
    """The erasure and hold tables, and the deletions an erasure makes."""

    def __init__(self, *, pool: asyncpg.Pool, rewrite: ErasureRewrite = "full",
                 lock_timeout_ms: int = REWRITE_LOCK_TIMEOUT_MS) -> None:
        self._pool = pool
        self._rewrite = rewrite
        self._lock_timeout_ms = lock_timeout_ms

    async def begin(self, tenant: str, *, request_ref: str, href: bytes, subject_ref: bytes,
                    legal_basis: str, requested_by: str) -> ErasureRecord:
        """Start (or find) the erasure of ``request_ref``; LegalHoldError when the subject is held.

        The subject's active key ids are recorded before anything is destroyed, so a retry after
        a crash still knows which ciphertexts to delete.
        """
        with translated("start erasure"):
            async with self._pool.acquire() as conn, conn.transaction():
                await conn.execute(_LOCK, tenant, href)
                row = await self._get(conn, tenant, request_ref)
                if row is not None:
                    if row.history_ref != href:
                        raise ConflictError("the request reference was used for another subject")
                    return row
                hold = await conn.fetchval("SELECT reason FROM subject_holds"
                                           " WHERE tenant_id = $1 AND history_ref = $2", tenant, href)
                if hold is not None:
                    raise LegalHoldError(f"the subject is under legal hold ({hold}); it cannot be erased")
                key_ids = await conn.fetchval(
                    "SELECT coalesce(array_agg(key_id), '{}') FROM data_keys WHERE tenant_id = $1"
                    " AND kind = 'subject' AND subject_ref = $2 AND state = 'active'", tenant, subject_ref)
                created = await conn.fetchrow(
                    "INSERT INTO subject_erasures (tenant_id, request_ref, history_ref, legal_basis,"
                    " requested_by, erased_key_ids) VALUES ($1, $2, $3, $4, $5, $6)"
                    f" RETURNING {_RECORD_COLUMNS}",
                    tenant, request_ref, href, legal_basis, requested_by, list(key_ids))
        return record_of(_found(created))

    async def delete_data(self, tenant: str, *, request_ref: str, subject_ref: bytes, key_ids: list[str],
                          event_id: str, erased_at: datetime, clear_by: datetime) -> ErasureRecord:
        """In one transaction: delete the ciphertexts that needed any of ``key_ids`` and the
        subject's index rows, and record the counts, the event id and the times (kept on a retry)."""
        with translated("erase subject data"):
            async with self._pool.acquire() as conn, conn.transaction():
                payloads = await conn.execute(
                    "DELETE FROM payloads WHERE tenant_id = $1 AND key_ids && $2::text[]", tenant, key_ids)
                rows = await conn.execute(
                    "DELETE FROM subject_index WHERE tenant_id = $1"
                    " AND (subject_ref = $2 OR key_id = ANY($3::text[]))", tenant, subject_ref, key_ids)
                updated = await conn.fetchrow(
                    "UPDATE subject_erasures SET"
                    " erased_key_ids = ARRAY(SELECT DISTINCT unnest(erased_key_ids || $3::text[])"
                    " ORDER BY 1),"
                    " payloads_deleted = payloads_deleted + $4, index_rows_deleted = index_rows_deleted + $5,"
                    " event_id = coalesce(event_id, $6), erased_at = coalesce(erased_at, $7),"
                    " caches_clear_by = greatest(caches_clear_by, $8)"
                    f" WHERE tenant_id = $1 AND request_ref = $2 RETURNING {_RECORD_COLUMNS}",
                    tenant, request_ref, key_ids, rows_affected(payloads), rows_affected(rows),
                    uuid.UUID(event_id), erased_at, clear_by)
            await self._rewrite_payloads()  # outside the transaction: VACUUM cannot run in one
        return record_of(_found(updated))

    async def _rewrite_payloads(self) -> None:
        if self._rewrite == "off":
            return
        async with self._pool.acquire() as conn:
            await conn.execute(f"SET lock_timeout = {int(self._lock_timeout_ms)}")
            try:
                await conn.execute(_REWRITES[self._rewrite])
            except asyncpg.LockNotAvailableError as e:
                raise UnavailableError("payloads is in use: its rewrite after the erasure did not get its lock in"
                                       " time; repeat the request", retry_after=5.0) from e
            finally:
                await conn.execute("RESET lock_timeout")

    async def finish(self, tenant: str, request_ref: str, receipt: str) -> ErasureRecord:
        with translated("finish erasure"):
            row = await self._pool.fetchrow(
                "UPDATE subject_erasures SET state = 'done', receipt = $3 WHERE tenant_id = $1"
                f" AND request_ref = $2 RETURNING {_RECORD_COLUMNS}", tenant, request_ref, receipt)
        return record_of(_found(row))

    async def set_hold(self, tenant: str, href: bytes, *, reason: str, case_ref: str | None,
                       set_by: str) -> None:
        with translated("set legal hold"):
            async with self._pool.acquire() as conn, conn.transaction():
                await conn.execute(_LOCK, tenant, href)
                await conn.execute(
                    "INSERT INTO subject_holds (tenant_id, history_ref, reason, case_ref, set_by)"
                    " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant_id, history_ref) DO UPDATE"
                    " SET reason = $3, case_ref = $4, set_by = $5, set_at = now()",
                    tenant, href, reason, case_ref, set_by)

    async def clear_hold(self, tenant: str, href: bytes, *, reason: str, released_by: str) -> bool:
        with translated("release legal hold"):
            async with self._pool.acquire() as conn, conn.transaction():
                await conn.execute(_LOCK, tenant, href)
                status = await conn.execute(
                    "WITH gone AS (DELETE FROM subject_holds WHERE tenant_id = $1 AND history_ref = $2"
                    "  RETURNING tenant_id, history_ref, reason, case_ref, set_by, set_at)"
                    " INSERT INTO subject_hold_releases (tenant_id, history_ref, reason, case_ref, set_by, set_at,"
                    "  release_reason, released_by) SELECT *, $3, $4 FROM gone", tenant, href, reason, released_by)
        return rows_affected(status) > 0

    async def released_holds(self, tenant: str, href: bytes, limit: int) -> list[dict[str, Any]]:
        async with tenant_scope(self._pool, tenant) as conn:
            rows = await conn.fetch(
                "SELECT reason, case_ref, set_by, set_at, release_reason, released_by, released_at"
                " FROM subject_hold_releases WHERE tenant_id = $1 AND history_ref = $2"
                " ORDER BY released_at DESC LIMIT $3", tenant, href, limit)
        return [{**dict(r), "set_at": r["set_at"].isoformat(), "released_at": r["released_at"].isoformat()}
                for r in rows]

    async def history(self, tenant: str, *, href: bytes | None, request_ref: str | None,
                      limit: int) -> list[ErasureRecord]:
        async with tenant_scope(self._pool, tenant) as conn:
            return await erasure_history(conn, tenant, href=href, request_ref=request_ref, limit=limit)

    async def hold(self, tenant: str, href: bytes) -> dict[str, Any] | None:
        async with tenant_scope(self._pool, tenant) as conn:
            return await hold_of(conn, tenant, href)

    @staticmethod
    async def _get(conn: Conn, tenant: str, request_ref: str) -> ErasureRecord | None:
        row = await conn.fetchrow(f"SELECT {_RECORD_COLUMNS} FROM subject_erasures"
                                  " WHERE tenant_id = $1 AND request_ref = $2", tenant, request_ref)
        return None if row is None else record_of(row)


def _found(row: asyncpg.Record | None) -> asyncpg.Record:
    if row is None:
        raise NotFoundError("the erasure request vanished while it ran")
    return row


def rows_affected(status: str) -> int:
    """Rows affected, from a command status such as ``DELETE 42``."""
    return int(status.rsplit(" ", 1)[-1])


async def erasure_history(conn: Conn, tenant: str, *, href: bytes | None, request_ref: str | None,
                          limit: int) -> list[ErasureRecord]:
    """Erasures of one subject, one request, or (neither given) the latest ones; newest first."""
    rows = await conn.fetch(
        f"SELECT {_RECORD_COLUMNS} FROM subject_erasures WHERE tenant_id = $1"
        " AND ($2::bytea IS NULL OR history_ref = $2) AND ($3::text IS NULL OR request_ref = $3)"
        " ORDER BY requested_at DESC, request_ref LIMIT $4", tenant, href, request_ref, limit)
    return [record_of(r) for r in rows]


async def hold_of(conn: Conn, tenant: str, href: bytes) -> dict[str, Any] | None:
    row = await conn.fetchrow("SELECT reason, case_ref, set_by, set_at FROM subject_holds"
                              " WHERE tenant_id = $1 AND history_ref = $2", tenant, href)
    if row is None:
        return None
    return {"reason": row["reason"], "case_ref": row["case_ref"], "set_by": row["set_by"],
            "set_at": row["set_at"].isoformat()}
