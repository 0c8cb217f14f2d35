"""Tampering made directly in PostgreSQL is caught by `sealtrail verify`, which names the first bad
index or the checkpoint: an edited byte, a deleted entry, two swapped entries, a truncated log,
a payload deleted or altered without an erasure, and a checkpoint re-signed by another key."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest

from sealtrail.audit import audit_live
from sealtrail.audit.client import http_client
from sealtrail.core.note import Ed25519Signer, parse_note, sign_note
from sealtrail.errors import VerificationError
from tests.support.query import QueryStack, call, on_port

TENANT = "tamper"
Tamper = Callable[[asyncpg.Pool], Awaitable[Callable[[], Awaitable[None]]]]


@pytest.fixture(scope="module")
async def tamper_log(stack: QueryStack) -> int:
    """A log of 40 calls under a signed checkpoint that verifies before any tampering."""
    ids = await stack.send(TENANT, [call(subjects=["user:tina@example.com"] if i % 4 == 0 else None,
                                         payload={"args": {"q": f"t {i}"}}) for i in range(40)])
    await stack.logged(TENANT, ids)
    report = await _audit(stack)
    return report.entries


async def _audit(stack: QueryStack) -> object:
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


CASES: list[tuple[Tamper, str]] = [
    (edit_byte, "entry 10"), (delete_entry, "entry 12"), (swap_entries, "entry 5"), (truncate, "index 30"),
    (delete_payload, "entry 8"), (alter_payload, "entry 9"), (resign_checkpoint, "checkpoint at tree size"),
]


@contextlib.asynccontextmanager
async def tampered(stack: QueryStack, tamper: Tamper) -> AsyncIterator[None]:
    restore = await tamper(stack.pool)
    try:
        yield
    finally:
        await restore()


@pytest.mark.parametrize(("tamper", "named"), CASES, ids=[t.__name__ for t, _ in CASES])
async def test_verify_fails_and_names_where(stack: QueryStack, tamper_log: int, tamper: Tamper, named: str) -> None:
    """The tampered log fails verification with the first bad index (or the checkpoint) named;
    restoring the rows makes it verify again."""
    async with tampered(stack, tamper):
        with pytest.raises(VerificationError) as e:
            await _audit(stack)
        assert named in str(e.value), str(e.value)
        if tamper is not resign_checkpoint:
            assert str(e.value.index) in named
    await _audit(stack)


async def test_cli_exits_non_zero_naming_the_index(stack: QueryStack, tamper_log: int) -> None:
    """`sealtrail verify --url` on a log with a payload deleted without an erasure exits 1 and
    prints one line naming the entry."""
    env = {**os.environ, "SEALTRAIL_TOKEN": stack.tokens[f"{TENANT}:auditor"]}
    async with on_port(stack.query_app) as url, tampered(stack, delete_payload):
        done = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "sealtrail.cli.main", "verify", "--url", url, "--log", TENANT],
            env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "payload of entry 8 is missing" in done.stderr
