"""Every gateway decision becomes a Sealtrail event through the SDK client (batching, retries with
the same event ids, the on-disk spool), and the gateway knows whether the ledger is reachable.

With a spool (``[ledger] spool_dir``), :meth:`Recorder.record` returns only once the event is in
the spool on disk, fsync'd (the SDK's ``send_durable``; concurrent calls share one fsync), so an
event the agent's answer follows survives a SIGKILL of the gateway; the SDK delivers it from the
spool, and the next process on the same spool delivers what a killed one left. Without a spool,
events wait in memory (at most ``flush_interval_s``) and a killed process loses them.

The ledger counts as down while its ``/healthz`` does not answer (probed every ``probe_s``) or
while the client's deliveries fail (until it has drained its spool again). Events are never
dropped: they wait in the spool until the ledger returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any

import httpx

from sealtrail.sdk.client import Rejected, SealtrailClient

log = logging.getLogger("sealtrail.gateway")
PROBE_S = 1.0


class Recorder:
    def __init__(self, url: str, token: str, *, spool_dir: Path | None, flush_interval_s: float = 0.5,
                 probe_s: float = PROBE_S) -> None:
        self._url = url
        self.durable = spool_dir is not None
        self.client = SealtrailClient(url, token, spool_dir=spool_dir, flush_interval_s=flush_interval_s,
                                      attempts=2, timeout_s=5.0, on_rejected=self._rejected)
        self._probe_s = probe_s
        self._probe: asyncio.Task[None] | None = None
        self._reachable = True
        self.sent = 0
        self.rejected = 0

    def start(self) -> None:
        self.client.start()
        if self._probe is None:
            self._probe = asyncio.create_task(self._probe_loop(), name="gateway-ledger-probe")

    @property
    def ledger_up(self) -> bool:
        return self._reachable and not self.client.outage

    @property
    def spool_depth(self) -> int:
        return self.client.pending + (1 if self.client.spooled else 0)

    async def record(self, event: dict[str, Any]) -> None:
        self.sent += 1
        if self.durable:
            await self.client.send_durable([event])
        else:
            await self.client.send(event)

    async def _probe_loop(self) -> None:
        async with httpx.AsyncClient(timeout=max(0.5, self._probe_s)) as http:
            while True:
                try:
                    self._reachable = (await http.get(self._url + "/healthz")).status_code == 200
                except httpx.HTTPError:
                    self._reachable = False
                if self._reachable and self.client.outage:
                    with contextlib.suppress(Exception):
                        await self.client.flush()
                await asyncio.sleep(self._probe_s)

    def _rejected(self, rejected: list[Rejected]) -> None:
        self.rejected += len(rejected)
        for r in rejected:  # titles and pointers only: the ledger's problem details never hold payloads
            log.error("ledger rejected event %s: %s at %s", r.event_id, r.title, r.pointer)

    async def close(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(BaseException):
                await self._probe
            self._probe = None
        await self.client.close()
