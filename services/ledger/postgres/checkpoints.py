"""PostgreSQL adapter of the checkpoint store. asyncpg errors are translated here.

A signing transaction holds a per-log advisory lock (one signer per log across processes) and
reads the active keys FOR SHARE, so a key rotation waits until the checkpoint is stored.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import asyncpg

from sealtrail.core.note import NoteSignature
from sealtrail.core.witnessing import with_cosignatures
from sealtrail.errors import UnavailableError
from sealtrail.infra.pgerrors import translated
from sealtrail.infra.postgres import Conn
from services.ledger.ports import (
    GROWN_LOGS_SQL,
    LATEST_NOTES_SQL,
    Sign,
    SignedCheckpoint,
    SigningKeyRow,
    SigningState,
    TreeHead,
    nodes_for,
)
from services.ledger.postgres import tree as tree_postgres


@contextmanager
def _pg(what: str) -> Iterator[None]:
    try:
        with translated(what):
            yield
    except asyncpg.PostgresError as e:
        raise UnavailableError(f"PostgreSQL refused {what}: {type(e).__name__}") from e


class PostgresSigningKeys:
    """Signing-key rows through one connection (a command line's, or one borrowed from a pool)."""

    def __init__(self, conn: Conn) -> None:
        self._conn = conn

    async def active_key_ids(self) -> dict[str, str]:
        """Within a transaction, the rows stay locked FOR SHARE until it ends."""
        rows = await self._conn.fetch(
            "SELECT purpose, key_id FROM signing_keys"
            " WHERE purpose IN ('checkpoint', 'cosign') AND not_after IS NULL FOR SHARE")
        return {r["purpose"]: r["key_id"] for r in rows}

    async def replace_active_keys(self, keys: Sequence[SigningKeyRow]) -> None:
        async with self._conn.transaction():
            await self._conn.execute("LOCK TABLE signing_keys IN SHARE ROW EXCLUSIVE MODE")
            await self._conn.execute(
                "UPDATE signing_keys SET not_after = now()"
                " WHERE purpose IN ('checkpoint', 'cosign') AND not_after IS NULL")
            await self._conn.executemany(
                "INSERT INTO signing_keys (key_name, key_id, purpose, vkey) VALUES ($1, $2, $3, $4)",
                [(k.key_name, k.key_id, k.purpose, k.vkey) for k in keys])


class PostgresCheckpointStore:
    """Checkpoints and signing keys in PostgreSQL."""

    def __init__(self, *, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def grown_logs(self) -> list[str]:
        with _pg("listing grown logs"):
            return [r["log_id"] for r in await self._pool.fetch(GROWN_LOGS_SQL)]

    async def active_key_ids(self) -> dict[str, str]:
        with _pg("reading signing keys"):
            async with self._pool.acquire() as conn:
                return await PostgresSigningKeys(conn).active_key_ids()

    async def replace_active_keys(self, keys: Sequence[SigningKeyRow]) -> None:
        with _pg("rotating signing keys"):
            async with self._pool.acquire() as conn:
                await PostgresSigningKeys(conn).replace_active_keys(keys)

    async def sign_next(self, log_id: str, sign: Sign) -> SignedCheckpoint | None:
        with _pg("signing a checkpoint"):
            async with self._pool.acquire() as conn, conn.transaction():
                if not await conn.fetchval(
                    "SELECT pg_try_advisory_xact_lock(hashtextextended('checkpoint:' || $1, 0))", log_id
                ):
                    return None
                state = await _state(conn, log_id)
                if state is None:
                    return None
                signed = sign(state)
                # Whatever the server's default: this commit waits for its WAL, and with it for
                # every earlier commit's, such as the ledger's batches (committed without waiting),
                # before the note can be published.
                await conn.execute("SET LOCAL synchronous_commit = on")
                await conn.execute(
                    "INSERT INTO checkpoints (log_id, tree_size, root, note, signed_at)"
                    " VALUES ($1, $2, $3, $4, to_timestamp($5))",
                    log_id, signed.size, signed.root, signed.note, signed.signed_at)
        return signed

    async def add_cosignatures(self, log_id: str, size: int, cosignatures: Sequence[NoteSignature]) -> bool:
        with _pg("storing witness cosignatures"):
            async with self._pool.acquire() as conn, conn.transaction():
                note = await conn.fetchval("SELECT note FROM checkpoints WHERE log_id = $1 AND tree_size = $2"
                                           " FOR UPDATE", log_id, size)
                if note is None:
                    return False
                await conn.execute("UPDATE checkpoints SET note = $3 WHERE log_id = $1 AND tree_size = $2",
                                   log_id, size, with_cosignatures(note, list(cosignatures)))
        return True

    async def latest_notes(self) -> list[tuple[str, str]]:
        with _pg("reading the latest checkpoints"):
            return [(r["log_id"], r["note"]) for r in await self._pool.fetch(LATEST_NOTES_SQL)]

    async def consistency_proof(self, log_id: str, size1: int, size2: int) -> list[bytes]:
        with _pg("reading a consistency proof"):
            async with self._pool.acquire() as conn:
                return await tree_postgres.consistency_proof(conn, log_id, size1, size2)


async def _state(conn: Conn, log_id: str) -> SigningState | None:
    row = await conn.fetchrow("SELECT origin, size, root FROM logs WHERE log_id = $1", log_id)
    prev = await conn.fetchrow(
        "SELECT tree_size, root FROM checkpoints WHERE log_id = $1 ORDER BY tree_size DESC LIMIT 1", log_id)
    if row is None or (prev is not None and prev["tree_size"] >= row["size"]):
        return None
    head = TreeHead(row["size"], row["root"])
    previous = None if prev is None else TreeHead(prev["tree_size"], prev["root"])
    nodes = await tree_postgres.find_nodes(conn, log_id, nodes_for(previous, head))
    key_ids = await PostgresSigningKeys(conn).active_key_ids()
    first_received = await conn.fetchval("SELECT received_at FROM entries WHERE log_id = $1 AND idx = $2",
                                         log_id, 0 if previous is None else previous.size)
    return SigningState(log_id, row["origin"], head, previous, nodes, key_ids, first_received)
