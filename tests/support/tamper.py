"""Tampering made directly in PostgreSQL, undone afterwards: the log-level and payload-level
changes an attacker with database access could make to the ``tamper`` tenant's log."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg

from sealtrail.audit import audit_live
from sealtrail.audit.client import http_client
from sealtrail.core.audit import AuditReport
from sealtrail.core.note import Ed25519Signer, parse_note, sign_note
from tests.support.query import QueryStack

TENANT = "tamper"
Tamper = Callable[[asyncpg.Pool], Awaitable[Callable[[], Awaitable[None]]]]


async def audit_tenant(stack: QueryStack) -> AuditReport:
    """``audit_live`` of the tamper tenant's log through the stack's query API."""
    async with http_client("http://query", stack.tokens[f"{TENANT}:auditor"], transport=stack.api._transport) as h:
        return await audit_live(h, TENANT)


async def _rows(pool: asyncpg.Pool, table: str, cond: str) -> list[asyncpg.Record]:
    return list(await pool.fetch(f"SELECT * FROM {table} WHERE log_id = '{TENANT}' AND {cond}"))


def _restorer(pool: asyncpg.Pool, table: str, rows: list[asyncpg.Record]) -> Callable[[], Awaitable[None]]:
    async def restore() -> None:
        cols = list(rows[0].keys())
        await pool.execute(f"DELETE FROM {table} WHERE log_id = '{TENANT}' AND idx = ANY($1::bigint[])",
                           [r["idx"] for r in rows])
        await pool.copy_records_to_table(table, records=[tuple(r.values()) for r in rows], columns=cols)
    return restore


async def edit_byte(pool: asyncpg.Pool) -> Callable[[], Awaitable[None]]:
    rows = await _rows(pool, "entries", "idx = 10")
    await pool.execute(f"UPDATE entries SET entry = overlay(entry placing '\\x58'::bytea from 30 for 1)"
                       f" WHERE log_id = '{TENANT}' AND idx = 10")
    return _restorer(pool, "entries", rows)


async def delete_entry(pool: asyncpg.Pool) -> Callable[[], Awaitable[None]]:
    rows = await _rows(pool, "entries", "idx = 12")
    await pool.execute(f"DELETE FROM entries WHERE log_id = '{TENANT}' AND idx = 12")
    return _restorer(pool, "entries", rows)


async def swap_entries(pool: asyncpg.Pool) -> Callable[[], Awaitable[None]]:
    rows = await _rows(pool, "entries", "idx IN (5, 6)")
    await pool.execute(
        f"UPDATE entries e SET entry = o.entry, leaf = o.leaf, chain = o.chain FROM entries o"
        f" WHERE e.log_id = '{TENANT}' AND o.log_id = e.log_id AND e.idx IN (5, 6) AND o.idx = 11 - e.idx")
    return _restorer(pool, "entries", rows)


async def truncate(pool: asyncpg.Pool) -> Callable[[], Awaitable[None]]:
    rows = await _rows(pool, "entries", "idx >= 30")
    await pool.execute(f"DELETE FROM entries WHERE log_id = '{TENANT}' AND idx >= 30")
    return _restorer(pool, "entries", rows)


async def delete_payload(pool: asyncpg.Pool) -> Callable[[], Awaitable[None]]:
    rows = await _rows(pool, "payloads", "idx = 8")
    await pool.execute(f"DELETE FROM payloads WHERE log_id = '{TENANT}' AND idx = 8")
    return _restorer(pool, "payloads", rows)


async def alter_payload(pool: asyncpg.Pool) -> Callable[[], Awaitable[None]]:
    rows = await _rows(pool, "payloads", "idx = 9")
    await pool.execute(f"UPDATE payloads SET ciphertext = overlay(ciphertext placing '\\x00'::bytea from 3 for 1)"
                       f" WHERE log_id = '{TENANT}' AND idx = 9")
    return _restorer(pool, "payloads", rows)


async def resign_checkpoint(pool: asyncpg.Pool) -> Callable[[], Awaitable[None]]:
    row = await pool.fetchrow(f"SELECT tree_size, note FROM checkpoints WHERE log_id = '{TENANT}'"
                              " ORDER BY tree_size DESC LIMIT 1")
    note = parse_note(row["note"])
    forged = sign_note(note.text, [Ed25519Signer.generate(note.signatures[0].name)])
    await pool.execute(f"UPDATE checkpoints SET note = $1 WHERE log_id = '{TENANT}' AND tree_size = $2",
                       forged, row["tree_size"])

    async def restore() -> None:
        await pool.execute(f"UPDATE checkpoints SET note = $1 WHERE log_id = '{TENANT}' AND tree_size = $2",
                           row["note"], row["tree_size"])
    return restore


@contextlib.asynccontextmanager
async def tampered(stack: QueryStack, tamper: Tamper) -> AsyncIterator[None]:
    restore = await tamper(stack.pool)
    try:
        yield
    finally:
        await restore()
