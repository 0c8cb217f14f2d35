"""Keeps the local log of ``sealtrail serve`` from growing without end.

Every ``interval_s``, whole sealed segments are deleted by the retention of their topic, as the
Kafka topics of ``deploy/`` are configured (``deploy/k8s/kafka-topics-job.yaml``):

- ``sealtrail.sealed``: segments older than ``max_age_s`` (seven days by default) that lie wholly
  below the offsets the ledger has committed. A record goes only once its entry is in the
  database, so nothing accepted is lost however long the ledger was stopped.
- ``sealtrail.dlq``: older than :data:`DLQ_RETENTION_S` (thirty days): time to look at them.
- ``sealtrail.checkpoints``: kept, like the published notes they are.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping

from sealtrail.cli.embedded.datadir import DLQ_TOPIC, SEALED_TOPIC
from sealtrail.errors import SealtrailError
from sealtrail.infra.locallog import LocalLog

DEFAULT_LOG_RETENTION_S = 7 * 24 * 3600.0
DLQ_RETENTION_S = 30 * 24 * 3600.0
DEFAULT_LOG_RETENTION_INTERVAL_S = 300.0

log = logging.getLogger("sealtrail.embedded")

Committed = Callable[[list[int]], Awaitable[Mapping[int, int]]]


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
                       interval_s: float = DEFAULT_LOG_RETENTION_INTERVAL_S) -> None:
    """Run :func:`trim_once` every ``interval_s`` until ``stop``; a failed pass is retried next time."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval_s)
        if stop.is_set():
            return
        try:
            freed = await trim_once(local, committed, max_age_s=max_age_s)
        except (SealtrailError, OSError) as e:
            log.warning("local log retention pass failed: %s", e)
            continue
        if freed:
            log.info("local log retention freed %d bytes", freed)
