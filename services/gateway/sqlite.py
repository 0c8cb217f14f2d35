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
from services.gateway.pinning import Change, Listed, Pin, approved, reconcile
from services.gateway.policy import take
from services.gateway.ports import (
    AgentKey,
    Approval,
    ApprovalStateError,
    ApprovalStatus,
    PinStateError,
    SealedCredential,
    ServerHealth,
    StatusChange,
)

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
    """
    CREATE TABLE gateway_credentials (
        server TEXT NOT NULL, version INTEGER NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('pending', 'current', 'retired', 'failed')),
        kek_id TEXT NOT NULL, key_id TEXT NOT NULL, wrapped_key BLOB NOT NULL, sealed BLOB NOT NULL,
        created_at REAL NOT NULL, activated_at REAL, retired_at REAL, checked_at REAL, check_status TEXT,
        PRIMARY KEY (server, version)
    ) STRICT;
    CREATE TABLE gateway_health (
        server TEXT PRIMARY KEY, state TEXT NOT NULL, failures INTEGER NOT NULL, checked_at REAL NOT NULL,
        status TEXT NOT NULL, latency_ms INTEGER, tools INTEGER
    ) STRICT;
    CREATE TABLE gateway_server_status (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, server TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('active', 'inactive')), reason TEXT NOT NULL, actor TEXT NOT NULL,
        changed_at REAL NOT NULL
    ) STRICT;
    CREATE INDEX gateway_server_status_server ON gateway_server_status (server, seq);
    """,
    """
    CREATE TABLE gateway_tool_pins (
        server TEXT NOT NULL, tool TEXT NOT NULL, def_hash TEXT NOT NULL, approved_hash TEXT NOT NULL,
        definition TEXT NOT NULL, listed INTEGER NOT NULL, first_seen REAL NOT NULL, changed_at REAL NOT NULL,
        change_event TEXT, approved_by TEXT, approved_at REAL, PRIMARY KEY (server, tool)
    ) STRICT;
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

    async def add_credential(self, cred: SealedCredential) -> SealedCredential:
        def fn(c: sqlite3.Connection) -> SealedCredential:
            top = c.execute("SELECT coalesce(max(version), 0) FROM gateway_credentials WHERE server = ?",
                            (cred.server,)).fetchone()[0]
            stored = replace(cred, version=top + 1)
            c.execute(f"INSERT INTO gateway_credentials ({_CRED_COLS}) VALUES ({', '.join('?' * 14)})",
                      _credential_row(stored))
            return stored
        return await self._run(fn)

    async def activate_credential(self, server: str, version: int, at: float) -> bool:
        def fn(c: sqlite3.Connection) -> bool:
            row = c.execute("SELECT state FROM gateway_credentials WHERE server = ? AND version = ?",
                            (server, version)).fetchone()
            if row is None or row[0] not in ("pending", "current"):
                return False
            c.execute("UPDATE gateway_credentials SET state = 'retired', retired_at = ?, sealed = X'', "
                      "wrapped_key = X'' WHERE server = ? AND state = 'current' AND version != ?",
                      (at, server, version))
            c.execute("UPDATE gateway_credentials SET state = 'current', activated_at = coalesce(activated_at, ?) "
                      "WHERE server = ? AND version = ?", (at, server, version))
            return True
        return await self._run(fn)

    async def fail_credential(self, server: str, version: int, at: float) -> bool:
        return await self._run(lambda c: c.execute(
            "UPDATE gateway_credentials SET state = 'failed', retired_at = ?, sealed = X'', wrapped_key = X'' "
            "WHERE server = ? AND version = ? AND state = 'pending'", (at, server, version)).rowcount == 1)

    async def current_credential(self, server: str) -> SealedCredential | None:
        row = await self._run(lambda c: c.execute(
            f"SELECT {_CRED_COLS} FROM gateway_credentials WHERE server = ? AND state = 'current'",
            (server,)).fetchone())
        return None if row is None else SealedCredential(*row)

    async def get_credential(self, server: str, version: int) -> SealedCredential | None:
        row = await self._run(lambda c: c.execute(
            f"SELECT {_CRED_COLS} FROM gateway_credentials WHERE server = ? AND version = ?",
            (server, version)).fetchone())
        return None if row is None else SealedCredential(*row)

    async def list_credentials(self, server: str | None = None) -> list[SealedCredential]:
        rows = await self._run(lambda c: c.execute(
            f"SELECT {_CRED_COLS} FROM gateway_credentials WHERE ? IS NULL OR server = ? ORDER BY server, version",
            (server, server)).fetchall())
        return [SealedCredential(*r) for r in rows]

    async def note_credential_check(self, server: str, version: int, at: float, status: str) -> None:
        await self._run(lambda c: c.execute(
            "UPDATE gateway_credentials SET checked_at = ?, check_status = ? WHERE server = ? AND version = ?",
            (at, status, server, version)))

    async def record_health(self, server: str, *, ok: bool, status: str, at: float, latency_ms: int | None,
                            tools: int | None, unhealthy_after: int) -> ServerHealth:
        def fn(c: sqlite3.Connection) -> ServerHealth:
            row = c.execute("SELECT failures FROM gateway_health WHERE server = ?", (server,)).fetchone()
            failures = 0 if ok else (0 if row is None else row[0]) + 1
            health = ServerHealth(server, "unhealthy" if failures >= unhealthy_after else "healthy", failures, at,
                                  status, latency_ms, tools)
            c.execute("INSERT OR REPLACE INTO gateway_health VALUES (?, ?, ?, ?, ?, ?, ?)",
                      (server, health.state, failures, at, status, latency_ms, tools))
            return health
        return await self._run(fn)

    async def get_health(self, server: str) -> ServerHealth | None:
        row = await self._run(lambda c: c.execute("SELECT * FROM gateway_health WHERE server = ?",
                                                  (server,)).fetchone())
        return None if row is None else ServerHealth(*row)

    async def list_health(self) -> list[ServerHealth]:
        rows = await self._run(lambda c: c.execute("SELECT * FROM gateway_health ORDER BY server").fetchall())
        return [ServerHealth(*r) for r in rows]

    async def set_server_state(self, change: StatusChange) -> bool:
        def fn(c: sqlite3.Connection) -> bool:
            row = c.execute("SELECT state FROM gateway_server_status WHERE server = ? ORDER BY seq DESC LIMIT 1",
                            (change.server,)).fetchone()
            if (row[0] if row is not None else "active") == change.state:
                return False
            c.execute(f"INSERT INTO gateway_server_status ({_STATUS_COLS}) VALUES (?, ?, ?, ?, ?)",
                      (change.server, change.state, change.reason, change.by, change.at))
            return True
        return await self._run(fn)

    async def server_state(self, server: str) -> StatusChange | None:
        row = await self._run(lambda c: c.execute(
            f"SELECT {_STATUS_COLS} FROM gateway_server_status WHERE server = ? ORDER BY seq DESC LIMIT 1",
            (server,)).fetchone())
        return None if row is None else StatusChange(*row)

    async def inactive_servers(self) -> dict[str, StatusChange]:
        rows = await self._run(lambda c: c.execute(
            f"SELECT {_STATUS_COLS} FROM gateway_server_status s WHERE seq = (SELECT max(seq) FROM "
            "gateway_server_status WHERE server = s.server) AND state = 'inactive'").fetchall())
        return {r[0]: StatusChange(*r) for r in rows}

    async def status_history(self, server: str | None = None) -> list[StatusChange]:
        rows = await self._run(lambda c: c.execute(
            f"SELECT {_STATUS_COLS} FROM gateway_server_status WHERE ? IS NULL OR server = ? ORDER BY seq",
            (server, server)).fetchall())
        return [StatusChange(*r) for r in rows]

    async def sync_pins(self, server: str, listed: list[Listed], *, at: float, event_id: str) -> list[Change]:
        def fn(c: sqlite3.Connection) -> list[Change]:  # BEGIN IMMEDIATE: one writer across processes
            rows = c.execute(f"SELECT {_PIN_COLS} FROM gateway_tool_pins WHERE server = ?", (server,)).fetchall()
            changes, writes = reconcile(server, map(_pin, rows), listed, at=at, event_id=event_id)
            c.executemany(f"INSERT OR REPLACE INTO gateway_tool_pins ({_PIN_COLS}) VALUES ({', '.join('?' * 11)})",
                          [_pin_row(p) for p in writes])
            return changes
        return await self._run(fn)

    async def list_pins(self, server: str | None = None) -> list[Pin]:
        rows = await self._run(lambda c: c.execute(
            f"SELECT {_PIN_COLS} FROM gateway_tool_pins WHERE ? IS NULL OR server = ? ORDER BY server, tool",
            (server, server)).fetchall())
        return [_pin(r) for r in rows]

    async def approve_pin(self, server: str, tool: str, *, by: str, at: float) -> Pin:
        def fn(c: sqlite3.Connection) -> Pin:
            row = c.execute(f"SELECT {_PIN_COLS} FROM gateway_tool_pins WHERE server = ? AND tool = ?",
                            (server, tool)).fetchone()
            if row is None:
                raise KeyError(f"{server}/{tool}")
            current = _pin(row)
            if not current.changed:
                raise PinStateError(f"{server}/{tool}: its current definition is already approved")
            done = approved(current, by=by, at=at)
            c.execute("UPDATE gateway_tool_pins SET approved_hash = ?, approved_by = ?, approved_at = ? "
                      "WHERE server = ? AND tool = ?", (done.approved_hash, by, at, server, tool))
            return done
        return await self._run(fn)

    async def ping(self) -> None:
        await self._run(lambda c: c.execute("SELECT 1").fetchone())

    async def close(self) -> None:
        with self._lock:
            self._conn.close()


_CRED_COLS = ("server, version, kind, name, state, kek_id, key_id, wrapped_key, sealed, created_at, activated_at, "
              "retired_at, checked_at, check_status")
_STATUS_COLS = "server, state, reason, actor, changed_at"


def _credential_row(c: SealedCredential) -> tuple[Any, ...]:
    return (c.server, c.version, c.kind, c.name, c.state, c.kek_id, c.key_id, c.wrapped_key, c.sealed, c.created_at,
            c.activated_at, c.retired_at, c.checked_at, c.check_status)


def _check_decidable(current: Approval, at: float) -> None:
    if current.status != "pending":
        raise ApprovalStateError(f"approval {current.approval_id} is already {current.status}")
    if at >= current.expires_at:
        raise ApprovalStateError(f"approval {current.approval_id} expired before it was decided")


def _approval_row(a: Approval) -> tuple[Any, ...]:
    return (a.approval_id, a.fingerprint, a.agent, a.server, a.tool, a.call_event_id, a.created_at, a.expires_at,
            a.status, a.decided_by, a.reason, a.decided_at)


_PIN_COLS = ("server, tool, def_hash, approved_hash, definition, listed, first_seen, changed_at, change_event, "
             "approved_by, approved_at")


def _pin(row: Any) -> Pin:
    return Pin(row[0], row[1], row[2], row[3], row[4], bool(row[5]), *row[6:])


def _pin_row(p: Pin) -> tuple[Any, ...]:
    return (p.server, p.tool, p.def_hash, p.approved_hash, p.definition, int(p.listed), p.first_seen, p.changed_at,
            p.change_event, p.approved_by, p.approved_at)
