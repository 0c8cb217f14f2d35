"""A fractional or sub-millisecond ``latency_ms`` is sequenced like any other, on PostgreSQL and on
SQLite: the entry holds the number in its RFC 8785 form and the searchable column the same value."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from services.ledger.ports import PartitionCommit
from services.ledger.sequencer import LogHead, sequence
from tests.support.backends import LedgerBackend, postgres_backend, sqlite_backend
from tests.support.ledger import sealed

LATENCIES = (12.5, 0.042, 0.000125, 7, 0)


@contextlib.asynccontextmanager
async def _backend(kind: str, fresh_db_url: str, tmp_path: Path) -> AsyncIterator[LedgerBackend]:
    opened = postgres_backend(fresh_db_url) if kind == "postgres" else sqlite_backend(tmp_path / "ledger.db")
    async with opened as backend:
        await backend.raw.add_tenants("acme")
        yield backend


async def _latency_column(kind: str, backend: LedgerBackend, fresh_db_url: str) -> list[Any]:
    sql = "SELECT latency_ms FROM entries WHERE log_id = 'acme' ORDER BY idx"
    if kind == "postgres":
        conn = await asyncpg.connect(fresh_db_url)
        try:
            return [r[0] for r in await conn.fetch(sql)]
        finally:
            await conn.close()
    db = backend.raw._db  # type: ignore[attr-defined]
    return [r[0] for r in await db.read(lambda c: c.execute(sql).fetchall())]


@pytest.mark.parametrize("kind", ["postgres", "sqlite"])
async def test_a_fractional_latency_is_logged_exactly(kind: str, fresh_db_url: str, tmp_path: Path) -> None:
    """Records with latency_ms 12.5, 0.042, 0.000125, 7 and 0 commit (a bigint column refused the
    fractions); each entry carries its number as written by RFC 8785 and the column equals it."""
    records = []
    for latency in LATENCIES:
        r = sealed("acme")
        r.header["latency_ms"] = latency
        records.append(r)
    async with _backend(kind, fresh_db_url, tmp_path) as backend:
        empty = LogHead.empty(log_id="acme", tenant_id="acme", origin="test/acme")
        batch = sequence(empty, records)
        await backend.store.commit(PartitionCommit("g", "t", 0, None, len(records), [batch], [empty]))
        entries = [row[1] for row in await backend.raw.entries("acme")]
        column = await _latency_column(kind, backend, fresh_db_url)
    for entry, written in zip(entries, (b"12.5", b"0.042", b"0.000125", b"7", b"0"), strict=True):
        assert b'"latency_ms":' + written + b"," in entry
    assert column == list(LATENCIES)
