"""Keeps the local log and the SQLite WAL of ``sealtrail serve`` from growing without end.

Every ``interval_s`` (thirty seconds by default), whole segments are deleted by the retention of
their topic:

- ``sealtrail.sealed``: segments that lie wholly below the offsets the ledger has committed (in
  the same SQLite transaction as the entries they became) and were last written more than
  ``max_age_s`` ago: zero by default, so a record goes at the first pass after it is sequenced.
  An operator who wants a replay window sets an age. A record never goes before its entry is in
  the database, so nothing accepted is lost however long the ledger was stopped.
- ``sealtrail.dlq``: older than :data:`DLQ_RETENTION_S` (thirty days): time to look at them.
- ``sealtrail.checkpoints``: kept, like the published notes they are.

The same pass truncates the SQLite WAL once its file passed
:data:`~sealtrail.infra.sqlite.WAL_SIZE_LIMIT_BYTES` (``SqliteDatabase.checkpoint_wal``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping

from sealtrail.cli.embedded.datadir import DLQ_TOPIC, SEALED_TOPIC
from sealtrail.errors import SealtrailError
from sealtrail.infra.locallog import LocalLog

DEFAULT_LOG_RETENTION_S = 0.0
DLQ_RETENTION_S = 30 * 24 * 3600.0
DEFAULT_LOG_RETENTION_INTERVAL_S = 30.0

log = logging.getLogger("sealtrail.embedded")

Committed = Callable[[list[int]], Awaitable[Mapping[int, int]]]
Compact = Callable[[], Awaitable[int]]
"""Shrinks another file of the data dir (the WAL) once per pass; returns the bytes freed."""


async def trim_once(local: LocalLog, committed: Committed, *, max_age_s: float,
                    dlq_max_age_s: float = DLQ_RETENTION_S) -> int:
    """Delete what the retention allows now; return the bytes freed."""
    freed = 0
    sealed = list(range(local.partitions(SEALED_TOPIC)))
    done = await committed(sealed)
    for p in sealed:
        freed += await local.drop_before(SEALED_TOPIC, p, done.get(p, 0), max_age_s=max_age_s)
    for p in range(local.partitions(DLQ_TOPIC)):
        freed += await local.drop_before(DLQ_TOPIC, p, local.end_offset(DLQ_TOPIC, p), max_age_s=dlq_max_age_s)
    return freed


async def keep_trimmed(local: LocalLog, committed: Committed, stop: asyncio.Event, *,
                       max_age_s: float = DEFAULT_LOG_RETENTION_S,
                       interval_s: float = DEFAULT_LOG_RETENTION_INTERVAL_S,
                       compact: Compact | None = None) -> None:
    """Run :func:`trim_once` (and ``compact``) every ``interval_s`` until ``stop``; a failed pass
    is retried next time."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval_s)
        if stop.is_set():
            return
        try:
            freed = await trim_once(local, committed, max_age_s=max_age_s)
            if compact is not None:
                freed += await compact()
        except (SealtrailError, OSError) as e:
            log.warning("local log retention pass failed: %s", e)
            continue
        if freed:
            log.info("local log retention freed %d bytes", freed)
