"""Helpers for projector and analytics tests: backdated sealed records appended straight through
the ledger's store and sequencer (fast, no Kafka), subject keys, and an app with the analytics
router wired to a real API key."""

from __future__ import annotations

import os
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg
from fastapi import FastAPI, Header

from sealtrail.core.record import SealedRecord
from sealtrail.core.sealing import Kek
from sealtrail.infra.apikeys import Authenticator, KeyAdmin
from sealtrail.infra.auth import Principal, Role
from sealtrail.infra.auth_postgres import PostgresAuthStore
from sealtrail.infra.kek import IndexKeyWrapper
from sealtrail.infra.problems import install_problem_handlers
from services.ledger.ports import PartitionCommit
from services.ledger.postgres.store import PostgresLedgerStore
from services.ledger.sequencer import LogHead, sequence
from services.query import analytics
from services.query.postgres.analytics import PostgresAnalyticsReader
from tests.support.ledger import uuid7

PERIOD_KEY = "0" * 31 + "1"


def ts(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _record(tenant: str, at: datetime, fields: dict[str, Any], key_ids: Sequence[str]) -> SealedRecord:
    header = {"event_id": uuid7(), "occurred_at": ts(at), "received_at": ts(at), "tenant": tenant,
              "gateway_id": "gw-test", **fields, "key_ids": [PERIOD_KEY, *sorted(key_ids)],
              "payload_digest": "blake3:" + os.urandom(32).hex(), "payload_size": 2}
    return SealedRecord(tenant, header, os.urandom(24), os.urandom(16))


def call(tenant: str, at: datetime, *, tool: str = "db.query", server: str = "srv-db", agent: str = "agent-1",
         session: str | None = "s-1", decision: str = "allow", status: str = "ok", latency_ms: int | None = 20,
         cost_micros: int | None = None, def_hash: str | None = None,
         key_ids: Sequence[str] = ()) -> SealedRecord:
    """A tool_call record."""
    f: dict[str, Any] = {"type": "tool_call", "agent_id": agent, "server_id": server, "tool_name": tool,
                         "decision": decision, "status": status}
    optional = {"session_id": session, "latency_ms": latency_ms, "tool_def_hash": def_hash,
                "cost_micros": cost_micros, "currency": "USD" if cost_micros is not None else None}
    f.update({k: v for k, v in optional.items() if v is not None})
    return _record(tenant, at, f, key_ids)


def tool_list(tenant: str, at: datetime, *, server: str, tools: dict[str, str]) -> SealedRecord:
    """A tool_list snapshot of ``server``: name -> def_hash."""
    return _record(tenant, at, {"type": "tool_list", "server_id": server,
                                "tools": [{"name": n, "def_hash": h} for n, h in tools.items()]}, ())


def rate_limit(tenant: str, at: datetime, *, limit_id: str, observed: int, limit: int = 100,
               agent: str = "agent-1") -> SealedRecord:
    return _record(tenant, at, {"type": "rate_limit", "limit_id": limit_id, "window_s": 60, "limit": limit,
                                "observed": observed, "scope": "agent", "agent_id": agent}, ())


def def_hash(label: str) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(label.encode()).hexdigest()


async def append(pool: asyncpg.Pool, log_id: str, records: Sequence[SealedRecord], *,
                 chunk: int = 2000) -> None:
    """Append ``records`` to ``log_id`` (tenant = log id) exactly as the ledger commits them."""
    store = PostgresLedgerStore(pool=pool)
    topic = f"direct.{log_id}"
    heads = await store.load_heads([log_id])
    head = heads.get(log_id) or LogHead.empty(log_id=log_id, tenant_id=log_id, origin=f"test/{log_id}")
    new = [] if log_id in heads else [head]
    offset = (await store.load_offsets(group="direct", topic=topic, partitions=[0])).get(0)
    for pos in range(0, len(records), chunk):
        batch = sequence(head, records[pos:pos + chunk])
        nxt = (offset or 0) + len(batch.entries)
        await store.commit(PartitionCommit("direct", topic, 0, offset, nxt, [batch], new))
        head, new, offset = batch.after, [], nxt


async def provision(pool: asyncpg.Pool, *tenants: str, role: Role = Role.INVESTIGATOR) -> dict[str, str]:
    """Tenants made through the admin API, each with one key of ``role``; returns tenant -> token."""
    admin = KeyAdmin(store=PostgresAuthStore(pool=pool))
    kek = Kek.generate()
    tokens = {}
    for tenant in tenants:
        await admin.create_tenant(tenant, kek=IndexKeyWrapper(kek=kek, tenant=tenant))
        tokens[tenant] = (await admin.create_key(tenant=tenant, role=role, label="analyst")).token
    return tokens


async def subject_key(pool: asyncpg.Pool, tenant: str) -> tuple[str, bytes]:
    """A fresh active subject key row: (key_id, subject_ref)."""
    key_id, ref = secrets.token_hex(16), os.urandom(32)
    await pool.execute("INSERT INTO data_keys (key_id, tenant_id, kind, subject_ref, wrapped, kek_id)"
                       " VALUES ($1, $2, 'subject', $3, $4, 'test')", key_id, tenant, ref, os.urandom(72))
    return key_id, ref


def analytics_app(pool: asyncpg.Pool, *, now: datetime | None = None) -> FastAPI:
    """The analytics router behind real API-key authentication, as the query app wires it."""
    auth = Authenticator(store=PostgresAuthStore(pool=pool), cache_ttl_s=0)

    async def principal(authorization: str | None = Header(default=None)) -> Principal:
        return await auth.authenticate(authorization)

    app = FastAPI()
    install_problem_handlers(app)
    app.include_router(analytics.router)
    reader = PostgresAnalyticsReader(pool=pool)
    app.dependency_overrides[analytics.get_principal] = principal
    app.dependency_overrides[analytics.get_analytics_reader] = lambda: reader
    if now is not None:
        app.dependency_overrides[analytics.get_clock] = lambda: (lambda: now)
    return app
