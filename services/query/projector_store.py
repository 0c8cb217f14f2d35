"""The projector's storage port and its PostgreSQL adapter.

The projector reads committed entries of each log in index order and turns each batch into
read-model rows (:mod:`services.query.rollups`, :mod:`services.query.tooldefs`), written by
:mod:`services.query.projector_writes` together with the log's progress row. asyncpg errors are
translated here, nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import asyncpg

from sealtrail.errors import SequenceGapError
from sealtrail.infra.pgerrors import translated
from sealtrail.infra.postgres import Conn
from services.query import projector_writes as writes
from services.query.rollups import BatchDelta, ProjectedEntry, aggregate
from services.query.tooldefs import apply_snapshots

DEFAULT_BATCH_ENTRIES = 5000

# Every read model, in the order they are truncated and digested.
READ_MODELS = (
    "projector_progress", "rollup_hourly", "rollup_tool_hourly", "rollup_tool_daily", "rollup_agent_hourly",
    "rollup_agent_daily", "rollup_rate_limits", "subject_index", "sessions", "tool_definitions", "server_tools",
    "tool_definition_changes", "tool_usage",
)
# Columns that record when a row was written, not what the log holds.
_VOLATILE = ("updated_at",)


@dataclass(frozen=True, slots=True)
class LogProgress:
    """A log's committed size and the next index the projector will read."""

    log_id: str
    tenant_id: str
    size: int
    next_idx: int

    @property
    def lag(self) -> int:
        return max(0, self.size - self.next_idx)


@dataclass(frozen=True, slots=True)
class BatchResult:
    """What one projected batch covered: entries ``[first, next_idx)``."""

    log_id: str
    first: int
    next_idx: int
    subject_rows: int

    @property
    def entries(self) -> int:
        return self.next_idx - self.first


class ProjectorStore(Protocol):
    """Read-model storage.

    :meth:`project_batch` MUST be atomic: the rows derived from a batch and the log's advanced
    progress become visible together or not at all, so after any crash every entry has been
    projected exactly once or not yet. It MUST read entries in index order from the stored
    progress and MUST NOT skip an index (SequenceGapError). When another projector is working
    on the same log it MUST return None and change nothing. Driver errors MUST be translated
    into :mod:`sealtrail.errors` types.
    """

    async def logs(self) -> list[LogProgress]:
        """Every log with its committed size and projection progress."""
        ...

    async def project_batch(self, log: LogProgress, *, max_entries: int, until: int | None = None
                            ) -> BatchResult | None:
        """Project up to ``max_entries`` entries (and none at or past ``until``)."""
        ...

    async def reset(self) -> None:
        """Empty every read model and progress row in one transaction."""
        ...

    async def digest(self) -> dict[str, str]:
        """A hash of each read model's content (volatile columns left out), to compare states."""
        ...


class PostgresProjectorStore:
    """:class:`ProjectorStore` in the PostgreSQL database the ledger writes."""

    def __init__(self, *, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def logs(self) -> list[LogProgress]:
        with translated("read projector progress"):
            rows = await self._pool.fetch(
                "SELECT l.log_id, l.tenant_id, l.size, coalesce(p.next_idx, 0) AS next_idx"
                " FROM logs l LEFT JOIN projector_progress p USING (log_id) ORDER BY l.log_id")
        return [LogProgress(r["log_id"], r["tenant_id"], r["size"], r["next_idx"]) for r in rows]

    async def project_batch(self, log: LogProgress, *, max_entries: int = DEFAULT_BATCH_ENTRIES,
                            until: int | None = None) -> BatchResult | None:
        with translated("project entries"):
            async with self._pool.acquire() as conn, conn.transaction():
                return await _project(conn, log, max_entries, until)

    async def reset(self) -> None:
        with translated("reset read models"):
            await self._pool.execute(f"TRUNCATE {', '.join(READ_MODELS)}")

    async def digest(self) -> dict[str, str]:
        drop = " - ".join(f"'{c}'" for c in _VOLATILE)
        out: dict[str, str] = {}
        with translated("digest read models"):
            async with self._pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
                for table in READ_MODELS:
                    out[table] = await conn.fetchval(
                        f"SELECT md5(coalesce(string_agg(j, E'\\n' ORDER BY j COLLATE \"C\"), ''))"
                        f" FROM (SELECT (to_jsonb(t) - {drop})::text AS j FROM {table} t) x")
        return out


async def _lock_progress(conn: Conn, log: LogProgress) -> int | None:
    await conn.execute("INSERT INTO projector_progress (log_id, tenant_id) VALUES ($1, $2)"
                       " ON CONFLICT DO NOTHING", log.log_id, log.tenant_id)
    value = await conn.fetchval("SELECT next_idx FROM projector_progress WHERE log_id = $1"
                                " FOR UPDATE SKIP LOCKED", log.log_id)
    return None if value is None else int(value)


async def _read(conn: Conn, log_id: str, first: int, end: int) -> list[ProjectedEntry]:
    rows = await conn.fetch(
        "SELECT idx, occurred_at, entry FROM entries WHERE log_id = $1 AND idx >= $2 AND idx < $3"
        " ORDER BY idx", log_id, first, end)
    for i, r in enumerate(rows):
        if r["idx"] != first + i:
            raise SequenceGapError(f"log {log_id} has no entry {first + i}", index=first + i)
    return [ProjectedEntry.parse(log_id=log_id, idx=r["idx"], occurred_at=r["occurred_at"], entry=r["entry"])
            for r in rows]


async def _project(conn: Conn, log: LogProgress, max_entries: int, until: int | None) -> BatchResult | None:
    first = await _lock_progress(conn, log)
    if first is None:
        return None  # another projector holds this log
    end = first + max_entries if until is None else min(first + max_entries, until)
    entries = await _read(conn, log.log_id, first, end) if end > first else []
    if not entries:
        return BatchResult(log.log_id, first, first, 0)
    delta = aggregate(entries)
    await _write(conn, log.tenant_id, delta)
    subjects = await writes.write_subjects(conn, log.tenant_id, delta.key_uses)
    next_idx = entries[-1].idx + 1
    await conn.execute("UPDATE projector_progress SET next_idx = $2, updated_at = now() WHERE log_id = $1",
                       log.log_id, next_idx)
    return BatchResult(log.log_id, first, next_idx, subjects)


async def _write(conn: Conn, tenant: str, delta: BatchDelta) -> None:
    await writes.write_delta(conn, tenant, delta)
    if delta.snapshots:
        servers = sorted({s.server_id for s in delta.snapshots})
        current = await writes.load_servers(conn, tenant, servers)
        await writes.write_snapshots(conn, tenant, apply_snapshots(current, delta.snapshots))
