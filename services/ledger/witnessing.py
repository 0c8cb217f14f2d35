"""Every signed checkpoint goes to the configured witnesses; their cosignatures join its stored note.

One :class:`~sealtrail.infra.witnessclient.WitnessLoop` per log, started with the log's first
checkpoint of this process: consistency proofs come from the checkpoint store, verified
cosignatures are added to the stored note (so the checkpoint endpoints, tlog-proof files and export
bundles serve them as ordinary signature lines). Offering a checkpoint never waits for a witness.
The lag gauges and a warning line say how far the latest witnessed checkpoint trails the latest
signed one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

import httpx

from sealtrail.core.checkpoint import parse_checkpoint
from sealtrail.core.note import NoteSignature, parse_note
from sealtrail.core.witnessing import WitnessingConfig
from sealtrail.infra.witnessclient import WitnessClient, WitnessLoop
from services.ledger import metrics
from services.ledger.ports import CheckpointStore

log = logging.getLogger("sealtrail.ledger.witnessing")
LAG_WARNING_S = 60.0


class LedgerWitnessing:
    """The witnesses of every log this ledger signs checkpoints for."""

    def __init__(self, config: WitnessingConfig, *, store: CheckpointStore, timeout_s: float = 10.0) -> None:
        self.config = config
        self._store = store
        self._timeout_s = timeout_s
        self._http = httpx.AsyncClient()
        self._loops: dict[str, WitnessLoop] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._failures: dict[str, int] = {}

    def offer(self, log_id: str, note: str) -> None:
        """Hand a newly signed checkpoint of ``log_id`` to its witnesses; returns at once."""
        size = parse_checkpoint(parse_note(note).text).size
        loop = self._loops.get(log_id) or self._start(log_id)
        loop.offer(note, size)

    def loop(self, log_id: str) -> WitnessLoop | None:
        """The log's witness loop, once one of its checkpoints was offered."""
        return self._loops.get(log_id)

    def _start(self, log_id: str) -> WitnessLoop:
        store = self._store

        async def proof(old: int, new: int) -> Sequence[bytes]:
            return await store.consistency_proof(log_id, old, new)

        async def sink(witness: str, size: int, cosignature: NoteSignature) -> None:
            await store.add_cosignatures(log_id, size, [cosignature])
            metrics.WITNESS_COSIGNATURES.labels(witness).inc()

        clients = [WitnessClient(w, http=self._http, timeout_s=self._timeout_s) for w in self.config.witnesses]
        loop = WitnessLoop(clients, proof, sink, quorum=self.config.quorum, retry_max_s=self.config.retry_max_s)
        self._loops[log_id] = loop
        self._tasks.append(asyncio.create_task(loop.run(), name=f"witnesses-{log_id}"))
        return loop

    def observe(self) -> None:
        """Update the lag gauges and failure counters; log a warning for a log lagging too long."""
        for log_id, loop in self._loops.items():
            entries, seconds = loop.lag()
            metrics.WITNESS_LAG_ENTRIES.labels(log_id).set(entries)
            metrics.WITNESS_LAG_SECONDS.labels(log_id).set(seconds)
            if seconds > LAG_WARNING_S:
                log.warning("checkpoints not witnessed", extra={"log": log_id, "lag_entries": entries,
                                                                "lag_seconds": round(seconds, 1),
                                                                "witnessed_size": loop.witnessed_size})
            for name, state in loop.status().items():
                failures = int(str(state["failures"]))
                seen = self._failures.get(f"{log_id}/{name}", 0)
                if failures > seen:
                    metrics.WITNESS_FAILURES.labels(name).inc(failures - seen)
                self._failures[f"{log_id}/{name}"] = failures

    async def close(self) -> None:
        """Stop every witness task and close the HTTP client."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._http.aclose()
