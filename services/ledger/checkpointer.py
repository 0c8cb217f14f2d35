"""Signs C2SP checkpoints for logs that have grown, and never two inconsistent ones.

For each grown log, in one signing transaction of the checkpoint store (one signer per log, no
key rotation meanwhile): read the committed head, prove it consistent with the previous
checkpoint from the stored tree (and the root recomputable from stored nodes), sign the
checkpoint note with the active key, add a timestamped cosignature (its signed time), store it,
then publish it on the checkpoints topic and offer it to the witnesses, if any (never waiting for
them). The decisions here are pure; the store does the I/O.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from sealtrail.core import merkle
from sealtrail.core.checkpoint import format_checkpoint
from sealtrail.core.merkle import NodeID, verify_consistency
from sealtrail.core.note import sign_note
from sealtrail.errors import InconsistentCheckpointError, InvalidInputError, SealtrailError
from sealtrail.infra.bus import BusPublisher
from services.ledger import metrics
from services.ledger.ports import CheckpointStore, SignedCheckpoint, SigningState
from services.ledger.signing import DEFAULT_KEY_NAME, load_active, load_keys, rotate
from services.ledger.witnessing import LedgerWitnessing

log = logging.getLogger("sealtrail.ledger.checkpointer")

DEFAULT_CHECKPOINT_INTERVAL_S = 1.0


class Checkpointer:
    """Periodically signs checkpoints; safe to run in several ledger processes at once."""

    def __init__(self, *, store: CheckpointStore, key_dir: Path, key_name: str = DEFAULT_KEY_NAME,
                 interval_s: float = DEFAULT_CHECKPOINT_INTERVAL_S,
                 publisher: BusPublisher | None = None, topic: str = "",
                 witnessing: LedgerWitnessing | None = None) -> None:
        self._store = store
        self.witnessing = witnessing
        self._key_dir = key_dir
        self._key_name = key_name
        self._interval_s = interval_s
        self._publisher = publisher
        self._topic = topic

    async def ensure_keys(self) -> None:
        """Create the first key pair when none exists."""
        if await load_active(self._store, key_dir=self._key_dir) is None:
            await rotate(self._store, key_dir=self._key_dir, name=self._key_name)

    async def run(self, stop: asyncio.Event) -> None:
        if self.witnessing is not None:
            await self._offer_latest()
        while not stop.is_set():
            try:
                await self.tick()
            except (SealtrailError, OSError) as e:
                log.error("checkpoint round failed: %s: %s", type(e).__name__, e)
            if self.witnessing is not None:
                self.witnessing.observe()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self._interval_s)

    async def _offer_latest(self) -> None:
        """At start, hand each log's latest stored checkpoint to the witnesses: one signed before a
        restart would otherwise wait for the log to grow before being witnessed."""
        assert self.witnessing is not None
        try:
            for log_id, note in await self._store.latest_notes():
                self.witnessing.offer(log_id, note)
        except SealtrailError as e:
            log.error("could not offer the latest checkpoints to the witnesses: %s: %s", type(e).__name__, e)

    async def tick(self) -> list[str]:
        """Sign a checkpoint for every grown log; return the notes signed."""
        notes = []
        for log_id in await self._store.grown_logs():
            signed = await self._store.sign_next(log_id, self._sign)
            if signed is None:
                continue
            metrics.CHECKPOINTS.labels(log_id).inc()
            if signed.delay_s is not None:
                metrics.CHECKPOINT_DELAY.observe(max(0.0, signed.delay_s))
            notes.append(signed.note)
            if self.witnessing is not None:
                self.witnessing.offer(log_id, signed.note)
            if self._publisher is not None:
                await self._publisher.publish(self._topic, [(log_id.encode(), signed.note.encode())])
        return notes

    def _sign(self, state: SigningState) -> SignedCheckpoint:
        _check_consistent(state)
        keys = load_keys(self._key_dir, state.key_ids)
        if keys is None:
            raise InconsistentCheckpointError("no active signing key; run ensure_keys first")
        clock = time.time()
        now = int(clock)
        head = state.head
        body = format_checkpoint(state.origin, head.size, head.root)
        note = sign_note(body, [keys.signer, keys.cosigner.at(now)])
        first = state.first_received_at
        return SignedCheckpoint(head.size, head.root, note, now,
                                None if first is None else clock - first.timestamp())


class _FetchedNodes:
    """The nodes the store read, as a :class:`~sealtrail.core.merkle.NodeReader`."""

    def __init__(self, log_id: str, nodes: Mapping[NodeID, bytes]) -> None:
        self._log_id = log_id
        self._nodes = nodes

    def get_nodes(self, ids: Sequence[NodeID]) -> list[bytes]:
        for node in ids:
            if node not in self._nodes:
                raise InvalidInputError(
                    f"node ({node.level}, {node.index}) of log {self._log_id} is not stored")
        return [self._nodes[node] for node in ids]


def _check_consistent(state: SigningState) -> None:
    """Refuse to sign unless the stored tree reproduces the head's root and extends the previous one."""
    head, prev = state.head, state.previous
    nodes = _FetchedNodes(state.log_id, state.nodes)
    try:
        if merkle.root_at(nodes, head.size) != head.root:
            raise InconsistentCheckpointError(
                f"stored tree of size {head.size} does not reproduce the head's root")
        if prev is not None:
            proof = merkle.consistency_proof(nodes, prev.size, head.size)
            verify_consistency(prev.size, head.size, proof, prev.root, head.root)
    except SealtrailError as e:
        metrics.CHECKPOINT_REFUSED.labels(state.log_id).inc()
        raise InconsistentCheckpointError(
            f"log {state.log_id}: refusing to sign size {head.size}: {e}", index=head.size - 1
        ) from e
