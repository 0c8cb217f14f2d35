"""SQLite adapter of :class:`~services.gateway.ports.GatewayStore`, for gateways on one machine.

Several gateway processes may open the same file: WAL mode, a busy timeout, and ``BEGIN
IMMEDIATE`` around every read-modify-write make bucket draws and approval decisions atomic across
processes. sqlite3 errors become :class:`~sealtrail.errors.UnavailableError` here, nowhere else.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from sealtrail.errors import UnavailableError
from services.gateway.config import RateLimit
from services.gateway.policy import take
from services.gateway.ports import AgentKey, Approval, ApprovalStateError, ApprovalStatus

_T = TypeVar("_T")
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE gateway_keys (
        key_id TEXT PRIMARY KEY, agent TEXT NOT NULL, secret_hash TEXT NOT NULL,
        created_at REAL NOT NULL, expires_at REAL, revoked_at REAL
    ) STRICT;
    CREATE INDEX gateway_keys_agent ON gateway_keys (agent);
    CREATE TABLE gateway_approvals (
        approval_id TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, agent TEXT NOT NULL, server TEXT NOT NULL,
        tool TEXT NOT NULL, call_event_id TEXT NOT NULL, created_at REAL NOT NULL, expires_at REAL NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('pending', 'granted', 'refused', 'consumed')),
        decided_by TEXT, reason TEXT, decided_at REAL
    ) STRICT;
    CREATE INDEX gateway_approvals_fp ON gateway_approvals (fingerprint, created_at);
    CREATE TABLE gateway_buckets (bucket TEXT PRIMARY KEY, tokens REAL NOT NULL, updated REAL NOT NULL) STRICT;
    """,
)
_APPROVAL_COLS = ("approval_id, fingerprint, agent, server, tool, call_event_id, created_at, expires_at, status, "
                  "decided_by, reason, decided_at")


class SqliteGatewayStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA busy_timeout=10000")
            self._conn.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as e:
            raise UnavailableError(f"the gateway state database {path} cannot be opened: {e}") from e
        self._lock = threading.Lock()
        self._migrate()

    def _migrate(self) -> None:
        with self._tx() as c:
            c.execute("CREATE TABLE IF NOT EXISTS gateway_migrations (version INTEGER PRIMARY KEY) STRICT")
            done = {r[0] for r in c.execute("SELECT version FROM gateway_migrations")}
            for version, sql in enumerate(MIGRATIONS, start=1):
                if version not in done:
                    for statement in filter(str.strip, sql.split(";")):
                        c.execute(statement)
                    c.execute("INSERT INTO gateway_migrations (version) VALUES (?)", (version,))

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self._conn
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
                self._conn.execute("COMMIT")
            except sqlite3.Error as e:
                raise UnavailableError(f"the gateway state database failed: {e}") from e

    async def _run(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        def job() -> _T:
            with self._tx() as c:
                return fn(c)
        return await asyncio.to_thread(job)

    async def create_key(self, key: AgentKey) -> None:
        def fn(c: sqlite3.Connection) -> None:
            try:
                c.execute("INSERT INTO gateway_keys VALUES (?, ?, ?, ?, ?, ?)",
                          (key.key_id, key.agent, key.secret_hash, key.created_at, key.expires_at, key.revoked_at))
            except sqlite3.IntegrityError as e:
                raise ValueError(f"key {key.key_id} exists") from e
        await self._run(fn)

    async def get_key(self, key_id: str) -> AgentKey | None:
        row = await self._run(lambda c: c.execute("SELECT * FROM gateway_keys WHERE key_id = ?", (key_id,)).fetchone())
        return None if row is None else AgentKey(*row)

    async def list_keys(self, agent: str | None = None) -> list[AgentKey]:
        sql, args = "SELECT * FROM gateway_keys", tuple[str, ...]()
        if agent is not None:
            sql, args = sql + " WHERE agent = ?", (agent,)
        rows = await self._run(lambda c: c.execute(sql + " ORDER BY created_at", args).fetchall())
        return [AgentKey(*r) for r in rows]

    async def revoke_key(self, key_id: str, at: float) -> bool:
        return await self._run(lambda c: c.execute(
            "UPDATE gateway_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL", (at, key_id)
        ).rowcount == 1)

    async def expire_key(self, key_id: str, at: float) -> bool:
        return await self._run(lambda c: c.execute(
            "UPDATE gateway_keys SET expires_at = min(coalesce(expires_at, ?), ?) WHERE key_id = ? "
            "AND revoked_at IS NULL", (at, at, key_id)).rowcount == 1)

    async def create_approval(self, approval: Approval) -> None:
        await self._run(lambda c: c.execute(f"INSERT INTO gateway_approvals ({_APPROVAL_COLS}) VALUES "
                                            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", _approval_row(approval)))

    async def get_approval(self, approval_id: str) -> Approval | None:
        row = await self._run(lambda c: c.execute(
            f"SELECT {_APPROVAL_COLS} FROM gateway_approvals WHERE approval_id = ?", (approval_id,)).fetchone())
        return None if row is None else Approval(*row)

    async def find_approval(self, fingerprint: str) -> Approval | None:
        row = await self._run(lambda c: c.execute(
            f"SELECT {_APPROVAL_COLS} FROM gateway_approvals WHERE fingerprint = ? AND status != 'consumed' "
            "ORDER BY created_at DESC LIMIT 1", (fingerprint,)).fetchone())
        return None if row is None else Approval(*row)

    async def list_approvals(self, status: ApprovalStatus | None = None) -> list[Approval]:
        sql, args = f"SELECT {_APPROVAL_COLS} FROM gateway_approvals", tuple[str, ...]()
        if status is not None:
            sql, args = sql + " WHERE status = ?", (status,)
        rows = await self._run(lambda c: c.execute(sql + " ORDER BY created_at", args).fetchall())
        return [Approval(*r) for r in rows]

    async def decide_approval(self, approval_id: str, *, granted: bool, by: str, reason: str | None,
                              at: float) -> Approval:
        def fn(c: sqlite3.Connection) -> Approval:
            row = c.execute(f"SELECT {_APPROVAL_COLS} FROM gateway_approvals WHERE approval_id = ?",
                            (approval_id,)).fetchone()
            if row is None:
                raise KeyError(approval_id)
            current = Approval(*row)
            _check_decidable(current, at)
            done = replace(current, status="granted" if granted else "refused", decided_by=by, reason=reason,
                           decided_at=at)
            c.execute("UPDATE gateway_approvals SET status = ?, decided_by = ?, reason = ?, decided_at = ? "
                      "WHERE approval_id = ?", (done.status, by, reason, at, approval_id))
            return done
        return await self._run(fn)

    async def consume_approval(self, approval_id: str, *, status: ApprovalStatus = "granted") -> bool:
        return await self._run(lambda c: c.execute(
            "UPDATE gateway_approvals SET status = 'consumed' WHERE approval_id = ? AND status = ?",
            (approval_id, status)).rowcount == 1)

    async def take(self, bucket: str, rate: RateLimit, now: float) -> tuple[bool, float]:
        def fn(c: sqlite3.Connection) -> tuple[bool, float]:
            row = c.execute("SELECT tokens, updated FROM gateway_buckets WHERE bucket = ?", (bucket,)).fetchone()
            tokens, updated = (float(rate.capacity), now) if row is None else (row[0], row[1])
            ok, left, retry = take(tokens, updated, now, rate)
            c.execute("INSERT INTO gateway_buckets VALUES (?, ?, ?) ON CONFLICT (bucket) DO UPDATE "
                      "SET tokens = excluded.tokens, updated = excluded.updated", (bucket, left, max(now, updated)))
            return ok, retry
        return await self._run(fn)

    async def ping(self) -> None:
        await self._run(lambda c: c.execute("SELECT 1").fetchone())

    async def close(self) -> None:
        with self._lock:
            self._conn.close()


def _check_decidable(current: Approval, at: float) -> None:
    if current.status != "pending":
        raise ApprovalStateError(f"approval {current.approval_id} is already {current.status}")
    if at >= current.expires_at:
        raise ApprovalStateError(f"approval {current.approval_id} expired before it was decided")


def _approval_row(a: Approval) -> tuple[Any, ...]:
    return (a.approval_id, a.fingerprint, a.agent, a.server, a.tool, a.call_event_id, a.created_at, a.expires_at,
            a.status, a.decided_by, a.reason, a.decided_at)
