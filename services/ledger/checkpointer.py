"""Signs C2SP checkpoints for logs that have grown, and never two inconsistent ones.

For each grown log, in one transaction holding a per-log advisory lock: read the committed
head, prove it consistent with the previous checkpoint from the stored tree (and the root
recomputable from stored nodes), sign the checkpoint note with the active key, add a
timestamped cosignature (its signed time), store it, then publish it on the checkpoints topic.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path

import asyncpg

from sealtrail.core.checkpoint import format_checkpoint
from sealtrail.core.merkle import verify_consistency
from sealtrail.core.note import sign_note
from sealtrail.errors import InconsistentCheckpointError, InvalidProofError, SealtrailError
from sealtrail.infra.bus import BusPublisher
from sealtrail.infra.postgres import Conn
from services.ledger import metrics, tree_postgres
from services.ledger.signing import DEFAULT_KEY_NAME, load_active, rotate

log = logging.getLogger("sealtrail.ledger.checkpointer")

DEFAULT_CHECKPOINT_INTERVAL_S = 1.0

_GROWN_SQL = """
SELECT l.log_id FROM logs l
WHERE l.size > coalesce((SELECT max(c.tree_size) FROM checkpoints c WHERE c.log_id = l.log_id), 0)
"""


class Checkpointer:
    """Periodically signs checkpoints; safe to run in several ledger processes at once."""

    def __init__(self, *, pool: asyncpg.Pool, key_dir: Path, key_name: str = DEFAULT_KEY_NAME,
                 interval_s: float = DEFAULT_CHECKPOINT_INTERVAL_S,
                 publisher: BusPublisher | None = None, topic: str = "") -> None:
        self._pool = pool
        self._key_dir = key_dir
        self._key_name = key_name
        self._interval_s = interval_s
        self._publisher = publisher
        self._topic = topic

    async def ensure_keys(self) -> None:
        """Create the first key pair when none exists."""
        async with self._pool.acquire() as conn:
            if await load_active(conn, key_dir=self._key_dir) is None:
                await rotate(conn, key_dir=self._key_dir, name=self._key_name)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.tick()
            except (SealtrailError, OSError, asyncpg.PostgresError) as e:
                log.error("checkpoint round failed: %s: %s", type(e).__name__, e)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self._interval_s)

    async def tick(self) -> list[str]:
        """Sign a checkpoint for every grown log; return the notes signed."""
        async with self._pool.acquire() as conn:
            grown = [r["log_id"] for r in await conn.fetch(_GROWN_SQL)]
        notes = []
        for log_id in grown:
            note = await self._sign_one(log_id)
            if note is not None:
                notes.append(note)
                if self._publisher is not None:
                    await self._publisher.publish(self._topic, [(log_id.encode(), note.encode())])
        return notes

    async def _sign_one(self, log_id: str) -> str | None:
        async with self._pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval(
                "SELECT pg_try_advisory_xact_lock(hashtextextended('checkpoint:' || $1, 0))", log_id
            ):
                return None
            head = await conn.fetchrow("SELECT origin, size, root FROM logs WHERE log_id = $1", log_id)
            prev = await conn.fetchrow(
                "SELECT tree_size, root FROM checkpoints WHERE log_id = $1 ORDER BY tree_size DESC LIMIT 1",
                log_id,
            )
            if head is None or (prev is not None and prev["tree_size"] >= head["size"]):
                return None
            await _check_consistent(conn, log_id, prev, head)
            keys = await load_active(conn, key_dir=self._key_dir)
            if keys is None:
                raise InconsistentCheckpointError("no active signing key; run ensure_keys first")
            now = int(time.time())
            body = format_checkpoint(head["origin"], head["size"], head["root"])
            note = sign_note(body, [keys.signer, keys.cosigner.at(now)])
            await conn.execute(
                "INSERT INTO checkpoints (log_id, tree_size, root, note, signed_at)"
                " VALUES ($1, $2, $3, $4, to_timestamp($5))",
                log_id, head["size"], head["root"], note, now,
            )
        metrics.CHECKPOINTS.labels(log_id).inc()
        return note


async def _check_consistent(conn: Conn, log_id: str, prev: asyncpg.Record | None,
                            head: asyncpg.Record) -> None:
    """Refuse to sign unless the stored tree reproduces the head's root and extends ``prev``."""
    size, root = head["size"], head["root"]
    try:
        stored_root = await tree_postgres.root_at(conn, log_id, size)
        if stored_root != root:
            raise InvalidProofError(f"stored tree of size {size} does not reproduce the head's root")
        if prev is not None:
            proof = await tree_postgres.consistency_proof(conn, log_id, prev["tree_size"], size)
            verify_consistency(prev["tree_size"], size, proof, prev["root"], root)
    except (InvalidProofError, SealtrailError) as e:
        metrics.CHECKPOINT_REFUSED.labels(log_id).inc()
        raise InconsistentCheckpointError(
            f"log {log_id}: refusing to sign size {size}: {e}", index=size - 1
        ) from e
