"""Deletes the sealed topic's records once the ledger has sequenced them (Kafka DeleteRecords).

The ledger never commits offsets to Kafka: the next offset of each partition is stored in
PostgreSQL in the same transaction as the entries it produced (``consumer_offsets``). Every
``interval_s`` the trimmer reads those stored offsets and asks each partition's leader to delete
the records below them, so the log start offset follows the ledger and the ciphertexts the
records carry leave the brokers' disks at their next segment deletion.

Guarantees:

- A record at or above the stored offset of its partition MUST NOT be deleted, and is not: the
  offset asked for is one read from the database, which only grows (a stored offset is the end of
  a committed batch), and a partition with no stored offset is left alone.
- A record is deleted only once the commit of the offset above it is on disk. The ledger's
  commits do not wait for their WAL flush (a crash of the database can take back the last ones,
  and the ledger then reads those records again from Kafka, so they must still be there): the
  offsets come from ``durable_offsets``, which returns only once the commits it read are flushed.
- A failed pass (broker or database unavailable, leader moving) is logged and retried at the
  next interval; it never stops the ledger.
- Several ledgers of one group may each run it: they ask for the same offsets, and a request
  below the current log start offset changes nothing.

Operators who replay the topic from the beginning (a second consumer, an archive) turn it off
with ``SEALTRAIL_LEDGER_TRIM_KAFKA=false``; the topic's own retention then applies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete
from aiokafka.errors import KafkaError

from sealtrail.errors import SealtrailError
from services.ledger.ports import LedgerStore

log = logging.getLogger("sealtrail.ledger")

DEFAULT_TRIM_INTERVAL_S = 30.0
_REQUEST_TIMEOUT_MS = 10_000


class KafkaTrimmer:
    """Deletes ``topic``'s records below the offsets ``group`` stored (see the module docstring)."""

    def __init__(self, *, bootstrap: str, topic: str, group: str, store: LedgerStore,
                 interval_s: float = DEFAULT_TRIM_INTERVAL_S) -> None:
        self._bootstrap = bootstrap
        self._topic = topic
        self._group = group
        self._store = store
        self._interval_s = interval_s
        self._admin: AIOKafkaAdminClient | None = None
        self.trimmed: dict[int, int] = {}
        """Each partition's log start offset as the brokers last answered it."""

    async def run(self, stop: asyncio.Event) -> None:
        """Trim every ``interval_s`` until ``stop``; failures are logged and retried."""
        try:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self._interval_s)
                if stop.is_set():
                    return
                try:
                    await self.trim_once()
                except (KafkaError, SealtrailError, OSError) as e:
                    log.warning("trimming %s failed: %s; retrying in %.0f s", self._topic,
                                type(e).__name__ if isinstance(e, KafkaError) else e, self._interval_s)
                    await self.close()
        finally:
            await self.close()

    async def trim_once(self) -> dict[int, int]:
        """One pass: delete below the durable stored offsets; return the new start offset of each partition asked."""
        admin = await self._connected()
        partitions = await self._partitions(admin)
        stored = await self._store.durable_offsets(group=self._group, topic=self._topic, partitions=partitions)
        wanted = {TopicPartition(self._topic, p): RecordsToDelete(before_offset=o)
                  for p, o in stored.items() if o > self.trimmed.get(p, 0)}
        if not wanted:
            return {}
        starts = await admin.delete_records(wanted, timeout_ms=_REQUEST_TIMEOUT_MS)
        done = {tp.partition: start for tp, start in starts.items()}
        self.trimmed.update(done)
        log.debug("trimmed %s to %s", self._topic, done)
        return done

    async def _partitions(self, admin: AIOKafkaAdminClient) -> list[int]:
        described = await admin.describe_topics([self._topic])
        return sorted(p["partition"] for t in described if t["topic"] == self._topic for p in t["partitions"])

    async def _connected(self) -> AIOKafkaAdminClient:
        if self._admin is None:
            admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap, request_timeout_ms=_REQUEST_TIMEOUT_MS)
            await admin.start()
            self._admin = admin
        return self._admin

    async def close(self) -> None:
        """Close the admin connection (:meth:`run` does on its way out)."""
        admin, self._admin = self._admin, None
        if admin is not None:
            with contextlib.suppress(KafkaError, OSError):
                await admin.close()
