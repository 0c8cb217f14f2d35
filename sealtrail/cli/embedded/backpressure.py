"""Backpressure from the ledger to ingest in the embedded default.

In production Kafka absorbs a ledger that falls behind. In one process the local log would keep
accepting at ingest's pace while the ledger sequences at its own, so the backlog (records appended
to the sealed topic and not yet committed by the ledger) and the 202-to-checkpoint latency would
grow for as long as the load lasts. :meth:`LedgerBacklog.admit`, ingest's admission hook, stops
that: while the backlog is over its bound, a batch waits (up to ``max_wait_s``) for the ledger to
commit enough to make room, and if there is still none it raises
:class:`~sealtrail.errors.BackpressureError` before the batch is validated, sealed or appended,
which ingest answers 429 with ``Retry-After`` (the SDK backs off and resends the same events). A
refused batch costs no sealing and creates no key, and nothing acknowledged is refused.

Why wait at all: ``Retry-After`` counts whole seconds, and a ledger that commits a few thousand
records a second would drain the bound and sit idle while every client sleeps out its second. A
short wait holds the client instead (as a Kafka producer blocks when its buffer is full), so the
ledger always has work; the 429 remains for a ledger that stalls. Batches being appended count in
the backlog, so waiters woken by one commit do not all rush in at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Protocol

from prometheus_client import Counter, Gauge

from sealtrail.cli.embedded.datadir import DEFAULT_MAX_BACKLOG
from sealtrail.errors import BackpressureError

DEFAULT_RETRY_AFTER_S = 1.0
DEFAULT_MAX_WAIT_S = 1.0
"""How long a batch may wait for room before it is answered 429."""

BACKLOG = Gauge("sealtrail_embedded_ledger_backlog",
                "Records in the local log's sealed topic that the ledger has not committed yet")
BACKLOG_BOUND = Gauge("sealtrail_embedded_ledger_backlog_bound",
                      "Backlog above which new event batches are answered 429")
THROTTLED = Counter("sealtrail_embedded_throttled_batches_total",
                    "Event batches answered 429 because the ledger backlog was over its bound")


class BacklogSource(Protocol):
    """Where the backlog is measured: the embedded ledger's driver."""

    def backlog(self) -> int | None:
        """Records appended but not committed; None until the stored positions are loaded."""
        ...

    def committed(self) -> asyncio.Event:
        """An event set by the next commit; taken before reading the backlog, then waited on."""
        ...


class LedgerBacklog:
    """The ledger's backlog against a bound: :meth:`admit` waits for room or raises."""

    def __init__(self, *, bound: int = DEFAULT_MAX_BACKLOG, retry_after_s: float = DEFAULT_RETRY_AFTER_S,
                 max_wait_s: float = DEFAULT_MAX_WAIT_S) -> None:
        if bound < 1:
            raise ValueError("the backlog bound must be at least 1 record")
        self.bound = bound
        self.retry_after_s = retry_after_s
        self.max_wait_s = max_wait_s
        self._source: BacklogSource | None = None
        self._appending = 0  # records admitted whose append has not returned yet
        BACKLOG_BOUND.set(bound)

    def attach(self, source: BacklogSource | None) -> None:
        """Measure ``source`` from now on (None: nothing is measured, nothing is refused)."""
        self._source = source

    def records(self) -> int:
        """The backlog: records appended or being appended, not committed (0 until the ledger resumed)."""
        backlog = self._source.backlog() if self._source is not None else None
        value = 0 if backlog is None else backlog + self._appending
        BACKLOG.set(value)
        return value

    @contextlib.asynccontextmanager
    async def admit(self, records: int) -> AsyncIterator[None]:
        """Wait until the backlog is at most the bound, then count ``records`` in it for the block.

        Raises :class:`BackpressureError` if there is no room after ``max_wait_s``.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait_s
        while self._source is not None:
            committed = self._source.committed()
            backlog = self.records()
            if backlog <= self.bound:
                break
            left = deadline - loop.time()
            if left <= 0:
                THROTTLED.inc()
                raise BackpressureError(
                    f"the ledger is {backlog} records behind (bound {self.bound}); retry later",
                    retry_after=self.retry_after_s)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(committed.wait(), timeout=left)
        self._appending += records
        try:
            yield
        finally:
            self._appending -= records
