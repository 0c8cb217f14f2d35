"""The ledger's published read interface: what the query service may use of the ledger's data.

:class:`LedgerReader` is the port; its adapters are :class:`services.ledger.postgres.reader.PostgresLedgerReader`
(row-level security keeps tenants apart) and :class:`services.ledger.sqlite.reader.SqliteLedgerReader`
(embedded default: its own queries name the tenant). This module and those two adapters are the only
parts of ``services.ledger`` that another service may import, and the adapters only from a composition root.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sealtrail.errors import InvalidInputError

MAX_ENTRIES_PER_READ = 1000


@dataclass(frozen=True, slots=True)
class LogInfo:
    log_id: str
    origin: str
    size: int


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    log_id: str
    size: int
    note: str
    signed_at: datetime


@dataclass(frozen=True, slots=True)
class StoredEntry:
    index: int
    entry: bytes
    chain: bytes


@dataclass(frozen=True, slots=True)
class PublishedKey:
    purpose: str
    vkey: str
    not_before: int
    not_after: int | None


class LedgerReader(Protocol):
    """Tenant-scoped reads of logs, checkpoints, entries and proofs.

    Every method MUST only see the given tenant's logs; a log of another tenant MUST look
    exactly like one that does not exist (NotFoundError).
    """

    async def logs(self, tenant: str) -> list[LogInfo]: ...
    async def latest_checkpoint(self, tenant: str, log_id: str) -> StoredCheckpoint: ...
    async def checkpoints(
        self, tenant: str, log_id: str, first: int, last: int
    ) -> list[StoredCheckpoint]: ...
    async def entries(self, tenant: str, log_id: str, start: int, end: int) -> list[StoredEntry]: ...
    async def inclusion_proof(self, tenant: str, log_id: str, index: int, size: int) -> list[bytes]: ...
    async def consistency_proof(self, tenant: str, log_id: str, size1: int, size2: int) -> list[bytes]: ...
    async def tlog_proof(self, tenant: str, event_id: uuid.UUID) -> str: ...
    async def published_keys(self) -> list[PublishedKey]: ...




def ceil_ts(t: datetime | None) -> int | None:
    """Windows are published in whole seconds: not_after rounds up so no signature falls outside."""
    if t is None:
        return None
    ts = t.timestamp()
    return int(ts) if ts == int(ts) else int(ts) + 1


def check_size(size: int, current: int) -> None:
    if not 0 < size <= current:
        raise InvalidInputError(f"the tree size must lie in 1..{current}, the log's size")



__all__: Sequence[str] = (
    "LedgerReader", "LogInfo", "PublishedKey", "StoredCheckpoint", "StoredEntry",
)
