"""PostgreSQL adapter of :class:`~services.gateway.ports.GatewayStore`, shared by many gateways.

Bucket draws lock the bucket's row (``SELECT ... FOR UPDATE`` in one transaction); decisions and
consumption are conditional updates, so concurrent gateways and approvers cannot both win.
asyncpg errors become :class:`~sealtrail.errors.UnavailableError` here, nowhere else.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace

import asyncpg

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

_LOCK = 0x6A7E3A7
_PIN_LOCK = 0x6A7E3A8
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE gateway_keys (
        key_id text PRIMARY KEY, agent text NOT NULL, secret_hash text NOT NULL,
        created_at double precision NOT NULL, expires_at double precision, revoked_at double precision
    );
    CREATE INDEX gateway_keys_agent ON gateway_keys (agent);
    CREATE TABLE gateway_approvals (
        approval_id text PRIMARY KEY, fingerprint text NOT NULL, agent text NOT NULL, server text NOT NULL,
        tool text NOT NULL, call_event_id text NOT NULL, created_at double precision NOT NULL,
        expires_at double precision NOT NULL,
        status text NOT NULL CHECK (status IN ('pending', 'granted', 'refused', 'consumed')),
        decided_by text, reason text, decided_at double precision
    );
    CREATE INDEX gateway_approvals_fp ON gateway_approvals (fingerprint, created_at);
    CREATE TABLE gateway_buckets (bucket text PRIMARY KEY, tokens double precision NOT NULL,
                                  updated double precision NOT NULL);
    """,
    """
    CREATE TABLE gateway_credentials (
        server text NOT NULL, version int NOT NULL, kind text NOT NULL, name text NOT NULL,
        state text NOT NULL CHECK (state IN ('pending', 'current', 'retired', 'failed')),
        kek_id text NOT NULL, key_id text NOT NULL, wrapped_key bytea NOT NULL, sealed bytea NOT NULL,
        created_at double precision NOT NULL, activated_at double precision, retired_at double precision,
        checked_at double precision, check_status text, PRIMARY KEY (server, version)
    );
    CREATE TABLE gateway_health (
        server text PRIMARY KEY, state text NOT NULL, failures int NOT NULL, checked_at double precision NOT NULL,
        status text NOT NULL, latency_ms int, tools int
    );
    CREATE TABLE gateway_server_status (
        seq bigserial PRIMARY KEY, server text NOT NULL,
        state text NOT NULL CHECK (state IN ('active', 'inactive')), reason text NOT NULL, actor text NOT NULL,
        changed_at double precision NOT NULL
    );
    CREATE INDEX gateway_server_status_server ON gateway_server_status (server, seq);
    """,
    """
    CREATE TABLE gateway_tool_pins (
        server text NOT NULL, tool text NOT NULL, def_hash text NOT NULL, approved_hash text NOT NULL,
        definition text NOT NULL, listed boolean NOT NULL, first_seen double precision NOT NULL,
        changed_at double precision NOT NULL, change_event text, approved_by text, approved_at double precision,
        PRIMARY KEY (server, tool)
    );
    """,
)
_CRED_COLS = ("server, version, kind, name, state, kek_id, key_id, wrapped_key, sealed, created_at, activated_at, "
              "retired_at, checked_at, check_status")
_STATUS_COLS = "server, state, reason, actor, changed_at"
_APPROVAL_COLS = ("approval_id, fingerprint, agent, server, tool, call_event_id, created_at, expires_at, status, "
                  "decided_by, reason, decided_at")


class PostgresGatewayStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @classmethod
    async def open(cls, url: str) -> PostgresGatewayStore:
        try:
            pool = await asyncpg.create_pool(url, min_size=1, max_size=8,
                                             server_settings={"application_name": "sealtrail-gateway"})
        except (OSError, asyncpg.PostgresError) as e:
            raise UnavailableError(f"the gateway state database cannot be reached: {type(e).__name__}") from e
        store = cls(pool)
        await store._migrate()
        return store

    @asynccontextmanager
    async def _conn(self) -> AsyncIterator[asyncpg.pool.PoolConnectionProxy]:
        try:
            async with self._pool.acquire() as conn:
                yield conn
        except (OSError, asyncpg.PostgresError) as e:
            raise UnavailableError(f"the gateway state database failed: {type(e).__name__}: {e}") from e

    async def _migrate(self) -> None:
        async with self._conn() as c:
            await c.execute("SELECT pg_advisory_lock($1)", _LOCK)
            try:
                await c.execute("CREATE TABLE IF NOT EXISTS gateway_migrations (version int PRIMARY KEY)")
                done = {r["version"] for r in await c.fetch("SELECT version FROM gateway_migrations")}
                for version, sql in enumerate(MIGRATIONS, start=1):
                    if version not in done:
                        async with c.transaction():
                            await c.execute(sql)
                            await c.execute("INSERT INTO gateway_migrations (version) VALUES ($1)", version)
            finally:
                await c.execute("SELECT pg_advisory_unlock($1)", _LOCK)

    async def create_key(self, key: AgentKey) -> None:
        async with self._conn() as c:
            try:
                await c.execute("INSERT INTO gateway_keys VALUES ($1, $2, $3, $4, $5, $6)", key.key_id, key.agent,
                                key.secret_hash, key.created_at, key.expires_at, key.revoked_at)
            except asyncpg.UniqueViolationError as e:
                raise ValueError(f"key {key.key_id} exists") from e

    async def get_key(self, key_id: str) -> AgentKey | None:
        async with self._conn() as c:
            row = await c.fetchrow("SELECT * FROM gateway_keys WHERE key_id = $1", key_id)
        return None if row is None else AgentKey(*row)

    async def list_keys(self, agent: str | None = None) -> list[AgentKey]:
        async with self._conn() as c:
            rows = await c.fetch("SELECT * FROM gateway_keys WHERE $1::text IS NULL OR agent = $1 "
                                 "ORDER BY created_at", agent)
        return [AgentKey(*r) for r in rows]

    async def revoke_key(self, key_id: str, at: float) -> bool:
        async with self._conn() as c:
            done = await c.execute("UPDATE gateway_keys SET revoked_at = $1 WHERE key_id = $2 AND revoked_at IS NULL",
                                   at, key_id)
        return done.endswith(" 1")

    async def expire_key(self, key_id: str, at: float) -> bool:
        async with self._conn() as c:
            done = await c.execute("UPDATE gateway_keys SET expires_at = least(coalesce(expires_at, $1), $1) "
                                   "WHERE key_id = $2 AND revoked_at IS NULL", at, key_id)
        return done.endswith(" 1")

    async def create_approval(self, approval: Approval) -> None:
        a = approval
        async with self._conn() as c:
            await c.execute(f"INSERT INTO gateway_approvals ({_APPROVAL_COLS}) VALUES "
                            "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                            a.approval_id, a.fingerprint, a.agent, a.server, a.tool, a.call_event_id, a.created_at,
                            a.expires_at, a.status, a.decided_by, a.reason, a.decided_at)

    async def get_approval(self, approval_id: str) -> Approval | None:
        async with self._conn() as c:
            row = await c.fetchrow(f"SELECT {_APPROVAL_COLS} FROM gateway_approvals WHERE approval_id = $1",
                                   approval_id)
        return None if row is None else Approval(*row)

    async def find_approval(self, fingerprint: str) -> Approval | None:
        async with self._conn() as c:
            row = await c.fetchrow(f"SELECT {_APPROVAL_COLS} FROM gateway_approvals WHERE fingerprint = $1 "
                                   "AND status != 'consumed' ORDER BY created_at DESC LIMIT 1", fingerprint)
        return None if row is None else Approval(*row)

    async def list_approvals(self, status: ApprovalStatus | None = None) -> list[Approval]:
        async with self._conn() as c:
            rows = await c.fetch(f"SELECT {_APPROVAL_COLS} FROM gateway_approvals WHERE $1::text IS NULL "
                                 "OR status = $1 ORDER BY created_at", status)
        return [Approval(*r) for r in rows]

    async def decide_approval(self, approval_id: str, *, granted: bool, by: str, reason: str | None,
                              at: float) -> Approval:
        async with self._conn() as c, c.transaction():
            row = await c.fetchrow(f"SELECT {_APPROVAL_COLS} FROM gateway_approvals WHERE approval_id = $1 "
                                   "FOR UPDATE", approval_id)
            if row is None:
                raise KeyError(approval_id)
            current = Approval(*row)
            if current.status != "pending":
                raise ApprovalStateError(f"approval {approval_id} is already {current.status}")
            if at >= current.expires_at:
                raise ApprovalStateError(f"approval {approval_id} expired before it was decided")
            done = replace(current, status="granted" if granted else "refused", decided_by=by, reason=reason,
                           decided_at=at)
            await c.execute("UPDATE gateway_approvals SET status = $1, decided_by = $2, reason = $3, "
                            "decided_at = $4 WHERE approval_id = $5", done.status, by, reason, at, approval_id)
        return done

    async def consume_approval(self, approval_id: str, *, status: ApprovalStatus = "granted") -> bool:
        async with self._conn() as c:
            done = await c.execute("UPDATE gateway_approvals SET status = 'consumed' WHERE approval_id = $1 "
                                   "AND status = $2", approval_id, status)
        return done.endswith(" 1")

    async def take(self, bucket: str, rate: RateLimit, now: float) -> tuple[bool, float]:
        async with self._conn() as c, c.transaction():
            await c.execute("INSERT INTO gateway_buckets VALUES ($1, $2, $3) ON CONFLICT (bucket) DO NOTHING",
                            bucket, float(rate.capacity), now)
            row = await c.fetchrow("SELECT tokens, updated FROM gateway_buckets WHERE bucket = $1 FOR UPDATE", bucket)
            assert row is not None
            ok, left, retry = take(row["tokens"], row["updated"], now, rate)
            await c.execute("UPDATE gateway_buckets SET tokens = $2, updated = $3 WHERE bucket = $1", bucket, left,
                            max(now, row["updated"]))
        return ok, retry

    async def add_credential(self, cred: SealedCredential) -> SealedCredential:
        async with self._conn() as c, c.transaction():
            await c.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", _LOCK, cred.server)
            top = await c.fetchval("SELECT coalesce(max(version), 0) FROM gateway_credentials WHERE server = $1",
                                   cred.server)
            stored = replace(cred, version=top + 1)
            await c.execute(f"INSERT INTO gateway_credentials ({_CRED_COLS}) VALUES "
                            "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
                            stored.server, stored.version, stored.kind, stored.name, stored.state, stored.kek_id,
                            stored.key_id, stored.wrapped_key, stored.sealed, stored.created_at,
                            stored.activated_at, stored.retired_at, stored.checked_at, stored.check_status)
        return stored

    async def activate_credential(self, server: str, version: int, at: float) -> bool:
        async with self._conn() as c, c.transaction():
            await c.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", _LOCK, server)
            state = await c.fetchval("SELECT state FROM gateway_credentials WHERE server = $1 AND version = $2",
                                     server, version)
            if state not in ("pending", "current"):
                return False
            await c.execute("UPDATE gateway_credentials SET state = 'retired', retired_at = $1, sealed = '', "
                            "wrapped_key = '' WHERE server = $2 AND state = 'current' AND version != $3",
                            at, server, version)
            await c.execute("UPDATE gateway_credentials SET state = 'current', activated_at = "
                            "coalesce(activated_at, $1) WHERE server = $2 AND version = $3", at, server, version)
        return True

    async def fail_credential(self, server: str, version: int, at: float) -> bool:
        async with self._conn() as c:
            done = await c.execute("UPDATE gateway_credentials SET state = 'failed', retired_at = $1, sealed = '', "
                                   "wrapped_key = '' WHERE server = $2 AND version = $3 AND state = 'pending'",
                                   at, server, version)
        return done.endswith(" 1")

    async def current_credential(self, server: str) -> SealedCredential | None:
        async with self._conn() as c:
            row = await c.fetchrow(f"SELECT {_CRED_COLS} FROM gateway_credentials WHERE server = $1 "
                                   "AND state = 'current'", server)
        return None if row is None else SealedCredential(*row)

    async def get_credential(self, server: str, version: int) -> SealedCredential | None:
        async with self._conn() as c:
            row = await c.fetchrow(f"SELECT {_CRED_COLS} FROM gateway_credentials WHERE server = $1 "
                                   "AND version = $2", server, version)
        return None if row is None else SealedCredential(*row)

    async def list_credentials(self, server: str | None = None) -> list[SealedCredential]:
        async with self._conn() as c:
            rows = await c.fetch(f"SELECT {_CRED_COLS} FROM gateway_credentials WHERE $1::text IS NULL "
                                 "OR server = $1 ORDER BY server, version", server)
        return [SealedCredential(*r) for r in rows]

    async def note_credential_check(self, server: str, version: int, at: float, status: str) -> None:
        async with self._conn() as c:
            await c.execute("UPDATE gateway_credentials SET checked_at = $1, check_status = $2 WHERE server = $3 "
                            "AND version = $4", at, status, server, version)

    async def record_health(self, server: str, *, ok: bool, status: str, at: float, latency_ms: int | None,
                            tools: int | None, unhealthy_after: int) -> ServerHealth:
        async with self._conn() as c:
            row = await c.fetchrow(
                "INSERT INTO gateway_health AS h VALUES ($1, CASE WHEN NOT $2 AND 1 >= $7 THEN 'unhealthy' ELSE "
                "'healthy' END, CASE WHEN $2 THEN 0 ELSE 1 END, $3, $4, $5, $6) ON CONFLICT (server) DO UPDATE SET "
                "failures = CASE WHEN $2 THEN 0 ELSE h.failures + 1 END, state = CASE WHEN NOT $2 AND "
                "h.failures + 1 >= $7 THEN 'unhealthy' ELSE 'healthy' END, checked_at = $3, status = $4, "
                "latency_ms = $5, tools = $6 RETURNING failures, state",
                server, ok, at, status, latency_ms, tools, unhealthy_after)
            assert row is not None
            failures, state = row["failures"], row["state"]
        return ServerHealth(server, state, failures, at, status, latency_ms, tools)

    async def get_health(self, server: str) -> ServerHealth | None:
        async with self._conn() as c:
            row = await c.fetchrow("SELECT * FROM gateway_health WHERE server = $1", server)
        return None if row is None else ServerHealth(*row)

    async def list_health(self) -> list[ServerHealth]:
        async with self._conn() as c:
            rows = await c.fetch("SELECT * FROM gateway_health ORDER BY server")
        return [ServerHealth(*r) for r in rows]

    async def set_server_state(self, change: StatusChange) -> bool:
        async with self._conn() as c, c.transaction():
            await c.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", _LOCK + 1, change.server)
            state = await c.fetchval("SELECT state FROM gateway_server_status WHERE server = $1 "
                                     "ORDER BY seq DESC LIMIT 1", change.server)
            if (state or "active") == change.state:
                return False
            await c.execute(f"INSERT INTO gateway_server_status ({_STATUS_COLS}) VALUES ($1, $2, $3, $4, $5)",
                            change.server, change.state, change.reason, change.by, change.at)
        return True

    async def server_state(self, server: str) -> StatusChange | None:
        async with self._conn() as c:
            row = await c.fetchrow(f"SELECT {_STATUS_COLS} FROM gateway_server_status WHERE server = $1 "
                                   "ORDER BY seq DESC LIMIT 1", server)
        return None if row is None else StatusChange(*row)

    async def inactive_servers(self) -> dict[str, StatusChange]:
        async with self._conn() as c:
            rows = await c.fetch(f"SELECT DISTINCT ON (server) {_STATUS_COLS} FROM gateway_server_status "
                                 "ORDER BY server, seq DESC")
        return {r["server"]: StatusChange(*r) for r in rows if r["state"] == "inactive"}

    async def status_history(self, server: str | None = None) -> list[StatusChange]:
        async with self._conn() as c:
            rows = await c.fetch(f"SELECT {_STATUS_COLS} FROM gateway_server_status WHERE $1::text IS NULL "
                                 "OR server = $1 ORDER BY seq", server)
        return [StatusChange(*r) for r in rows]

    async def sync_pins(self, server: str, listed: list[Listed], *, at: float, event_id: str) -> list[Change]:
        async with self._conn() as c, c.transaction():
            # one sync per server at a time, also before the server has any row to lock
            await c.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", _PIN_LOCK, server)
            rows = await c.fetch(f"SELECT {_PIN_COLS} FROM gateway_tool_pins WHERE server = $1", server)
            changes, writes = reconcile(server, (Pin(*r) for r in rows), listed, at=at, event_id=event_id)
            await c.executemany(
                f"INSERT INTO gateway_tool_pins ({_PIN_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) "
                "ON CONFLICT (server, tool) DO UPDATE SET def_hash = excluded.def_hash, definition = "
                "excluded.definition, listed = excluded.listed, changed_at = excluded.changed_at, "
                "change_event = excluded.change_event", [_pin_row(p) for p in writes])
        return changes

    async def list_pins(self, server: str | None = None) -> list[Pin]:
        async with self._conn() as c:
            rows = await c.fetch(f"SELECT {_PIN_COLS} FROM gateway_tool_pins WHERE $1::text IS NULL OR server = $1 "
                                 "ORDER BY server, tool", server)
        return [Pin(*r) for r in rows]

    async def approve_pin(self, server: str, tool: str, *, by: str, at: float) -> Pin:
        async with self._conn() as c, c.transaction():
            row = await c.fetchrow(f"SELECT {_PIN_COLS} FROM gateway_tool_pins WHERE server = $1 AND tool = $2 "
                                   "FOR UPDATE", server, tool)
            if row is None:
                raise KeyError(f"{server}/{tool}")
            current = Pin(*row)
            if not current.changed:
                raise PinStateError(f"{server}/{tool}: its current definition is already approved")
            done = approved(current, by=by, at=at)
            await c.execute("UPDATE gateway_tool_pins SET approved_hash = $3, approved_by = $4, approved_at = $5 "
                            "WHERE server = $1 AND tool = $2", server, tool, done.approved_hash, by, at)
        return done

    async def ping(self) -> None:
        async with self._conn() as c:
            await c.fetchval("SELECT 1")

    async def close(self) -> None:
        await self._pool.close()


_PIN_COLS = ("server, tool, def_hash, approved_hash, definition, listed, first_seen, changed_at, change_event, "
             "approved_by, approved_at")


def _pin_row(p: Pin) -> tuple[object, ...]:
    return (p.server, p.tool, p.def_hash, p.approved_hash, p.definition, p.listed, p.first_seen, p.changed_at,
            p.change_event, p.approved_by, p.approved_at)
