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
from services.gateway.policy import take
from services.gateway.ports import AgentKey, Approval, ApprovalStateError, ApprovalStatus

_LOCK = 0x6A7E3A7
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
)
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

    async def ping(self) -> None:
        async with self._conn() as c:
            await c.fetchval("SELECT 1")

    async def close(self) -> None:
        await self._pool.close()
