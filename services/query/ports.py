"""The query service's storage ports: analytics over the read models, investigations over the
entries, erasures and legal holds, retention, and console sessions, with the values they exchange.

Adapters, one module per port and technology: :mod:`services.query.postgres` (production, row-level
security keeps tenants apart) and :mod:`services.query.sqlite` (embedded default: every statement names
the tenant). Both adapters of each port pass the same contract suite (tests/contract/query_*_contract.py).
Only the composition roots (:mod:`services.query.stores`, the CLI) pick adapters.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Protocol

import asyncpg
from pydantic import Field

from sealtrail.core.callstats import CallCounters
from sealtrail.infra.auth import Principal
from services.query.cursor import Position
from services.query.drift import Baseline, HourStats
from services.query.windows import Window


class Grouping(StrEnum):
    TOOL = "tool"
    AGENT = "agent"
    SERVER = "server"


GROUP_COLUMNS: dict[Grouping, tuple[str, ...]] = {
    Grouping.TOOL: ("server_id", "tool_name"),
    Grouping.AGENT: ("agent_id",),
    Grouping.SERVER: ("server_id",),
}
# The narrow rollups (hourly, daily) each grouping reads.
GROUP_TABLES: dict[Grouping, tuple[str, str]] = {
    Grouping.TOOL: ("rollup_tool_hourly", "rollup_tool_daily"),
    Grouping.AGENT: ("rollup_agent_hourly", "rollup_agent_daily"),
    Grouping.SERVER: ("rollup_tool_hourly", "rollup_tool_daily"),
}


@dataclass(slots=True)
class CallTotals(CallCounters):
    """Sums over a group's tool calls in a window, with costs per currency."""

    costs: dict[str, int] = field(default_factory=dict)

    def add(self, row: Mapping[str, Any] | asyncpg.Record) -> None:
        self.calls += row["calls"] or 0
        self.ok += row["ok"] or 0
        self.errors += row["errors"] or 0
        self.executed += row["executed"] or 0
        self.denied += row["denied"] or 0
        self.step_up += row["step_up"] or 0
        self.latency_n += row["latency_n"] or 0
        self.latency_sum += row["latency_sum"] or 0
        hist = self.hist
        for i, n in enumerate(row["hist"]):
            hist[i] += n
        if row["currency"]:
            self.costs[row["currency"]] = self.costs.get(row["currency"], 0) + (row["cost"] or 0)

    def hour_stats(self) -> HourStats:
        return HourStats(self.calls, self.executed, self.errors, self.denied, self.hist, self.costs)

    def absorb(self, other: CallTotals) -> None:
        """Add ``other``'s counters, histogram and costs to these."""
        self.calls += other.calls
        self.ok += other.ok
        self.errors += other.errors
        self.executed += other.executed
        self.denied += other.denied
        self.step_up += other.step_up
        self.latency_n += other.latency_n
        self.latency_sum += other.latency_sum
        hist = self.hist
        for i, n in enumerate(other.hist):
            hist[i] += n
        for currency, micros in other.costs.items():
            self.costs[currency] = self.costs.get(currency, 0) + micros


@dataclass(frozen=True, slots=True)
class RateLimitTotals:
    limit_id: str
    scope: str
    agent_id: str
    server_id: str
    tool_name: str
    events: int
    max_observed: int
    max_limit: int
    max_window_s: int
    first_hour: datetime
    last_hour: datetime


@dataclass(frozen=True, slots=True)
class FirstUse:
    agent_id: str
    server_id: str
    tool_name: str
    first_used_at: datetime
    log_id: str
    index: int
    calls: Annotated[int, Field(description="calls of this tool by this agent so far, not only in the window")]


@dataclass(frozen=True, slots=True)
class DefinitionChange:
    """A tool's definition changed (or the tool was added or removed) in a server's tool list."""

    server_id: str
    tool_name: str
    change: str
    old_hash: str | None
    new_hash: str | None
    occurred_at: datetime
    log_id: str
    index: int


@dataclass(frozen=True, slots=True)
class StaleDefinition:
    """An agent last used a tool under a definition that is no longer the current one."""

    agent_id: str
    server_id: str
    tool_name: str
    last_used_at: datetime
    used_hash: str | None
    current_hash: str | None
    change: str
    changed_at: datetime


ToolKey = tuple[str, str]  # (server_id, tool_name)


@dataclass(frozen=True, slots=True)
class SeriesOf:
    """Whose calls a time series sums: every call (all None), one agent's, or one server's and/or
    one tool name's. An agent is not combined with a server or tool (the rollups keep them apart)."""

    agent_id: str | None = None
    server_id: str | None = None
    tool_name: str | None = None


class AnalyticsReader(Protocol):
    """Tenant-scoped reads of the read models.

    Every method MUST see only ``tenant``'s rows and MUST NOT return payload data: read models
    hold header facts only. PostgreSQL enforces the tenant in the database (row-level security);
    the SQLite adapter (:mod:`services.query.sqlite.analytics`) in every query's WHERE clause.
    Figures MUST be equal on both adapters for the same projected entries.
    """

    async def call_totals(self, tenant: str, grouping: Grouping, window: Window
                          ) -> dict[tuple[str, ...], CallTotals]: ...
    async def tool_hours(self, tenant: str, window: Window) -> dict[ToolKey, dict[datetime, CallTotals]]: ...
    async def drift_baseline(self, tenant: str, window: Window, min_timed: int) -> dict[ToolKey, Baseline]:
        """Per tool with calls in ``window``: its :class:`~services.query.drift.Baseline` (hourly
        p95s of the hours with at least ``min_timed`` timed calls). MUST equal
        :func:`services.query.drift.summarize` of the tool's :meth:`tool_hours`."""
        ...
    async def series(self, tenant: str, window: Window, of: SeriesOf, *, daily: bool
                     ) -> dict[datetime, CallTotals]:
        """Sums of the rollup rows that ``of`` selects, per rollup bucket (UTC hour, or UTC day when
        ``daily``: then ``window`` MUST be whole days) in ``window``; buckets without calls are absent."""
        ...
    async def rate_limits(self, tenant: str, window: Window, limit: int) -> list[RateLimitTotals]: ...
    async def first_uses(self, tenant: str, window: Window, agent_id: str | None, limit: int
                         ) -> list[FirstUse]: ...
    async def definition_changes(self, tenant: str, window: Window, limit: int) -> list[DefinitionChange]: ...
    async def stale_definitions(self, tenant: str, agent_id: str | None, limit: int
                                ) -> list[StaleDefinition]: ...


# Query parameter -> entries column; the filters an investigator may combine.
FILTER_COLUMNS: dict[str, str] = {
    "agent": "agent_id", "session": "session_id", "server": "server_id", "tool": "tool_name",
    "tier": "tool_tier", "decision": "decision", "status": "status", "type": "type",
}


@dataclass(frozen=True, slots=True)
class CallFilter:
    """What ``GET /v1/calls`` searches for; None means "any"."""

    equals: dict[str, str]
    occurred_from: datetime | None = None
    occurred_to: datetime | None = None
    subject_ref: bytes | None = None


@dataclass(frozen=True, slots=True)
class Found:
    """One entry: where it is, its bytes as logged with the header parsed from them, its stored
    leaf hash, and the column copies that the read used (``CHECKED_COLUMNS`` names, database
    values), which :mod:`services.query.integrity` checks against the header."""

    log_id: str
    idx: int
    occurred_at: datetime
    header: dict[str, Any]
    entry: bytes
    leaf: bytes
    columns: dict[str, Any]
    subject_key_id: str | None = None
    """When found through the subject index: the key id of the index row (checked against ``key_ids``)."""

    @property
    def position(self) -> Position:
        return Position(self.occurred_at, self.log_id, self.idx)

    def as_json(self) -> dict[str, Any]:
        return {"log": self.log_id, "index": self.idx, "leaf_hash": base64.b64encode(self.leaf).decode(),
                "header": self.header}


# The column copies of ``entries`` that every investigation read returns beside the entry bytes,
# in this order (after log_id, idx, occurred_at, entry, leaf), to be checked against the header.
CHECKED_COLUMNS = ("tenant_id", "event_id", "type", "agent_id", "session_id", "server_id", "tool_name",
                   "tool_tier", "decision", "status")


@dataclass(frozen=True, slots=True)
class StoredCall:
    """One entry with its stored payload (None when no ciphertext is stored)."""

    found: Found
    key_ids: tuple[str, ...] | None
    nonce: bytes | None
    ciphertext: bytes | None
    subject_key_id: str | None = None
    """For a subject's calls: the key id of the subject-index row that listed this entry."""


PageRow = tuple[int, bytes, bytes, bytes | None]
"""(index, entry bytes, chain value, payload digest or None): one row of an entries page."""


class InvestigationReader(Protocol):
    """Tenant-scoped reads of entries, payloads and the projector's subject index and sessions.

    Every method MUST see only ``tenant``'s rows: another tenant's log, entry or session MUST be
    indistinguishable from a missing one. Headers MUST be the logged entry bytes, parsed, never
    rebuilt from column copies. Pages MUST be keyset pages in a total order (newest first for
    searches, oldest first for timelines, log order for subjects) returning at most ``limit``
    items and whether more follow. Nothing here writes. Driver errors MUST be translated into
    :mod:`sealtrail.errors` types.
    """

    async def search_calls(self, tenant: str, f: CallFilter, after: Position | None, limit: int
                           ) -> tuple[list[Found], bool]: ...
    async def session_timeline(self, tenant: str, session_id: str, after: Position | None, limit: int
                               ) -> tuple[list[Found], bool]: ...
    async def session_summary(self, tenant: str, session_id: str) -> dict[str, Any] | None:
        """The projector's row of the session (times as ISO 8601), or None."""
        ...
    async def call_by_event_id(self, tenant: str, event_id: uuid.UUID, *, with_payload: bool
                               ) -> StoredCall | None: ...
    async def subject_calls(self, tenant: str, ref: bytes, after: Position | None, limit: int
                            ) -> tuple[list[StoredCall], bool]: ...
    async def entry_page(self, tenant: str, log_id: str, start: int, end: int) -> list[PageRow] | None:
        """The log's entries with index in ``[start, end)``, in index order, read in one statement
        (entries joined with their payloads), or None if no such log. Each row is (index, entry
        bytes, stored chain value, BLAKE3(nonce || ciphertext) of the stored payload or None when
        none is stored). The digest MUST be recomputed from the stored bytes on every read, never
        kept, so an altered ciphertext shows."""
        ...
    async def erasure_events(self, tenant: str, log_id: str) -> list[tuple[int, bytes]] | None:
        """(index, entry bytes) of the log's erasure and retention events; None if no such log."""
        ...


@dataclass(frozen=True, slots=True)
class ErasureRecord:
    """One erasure request as stored: findable by request reference and by ``history_ref``."""

    request_ref: str
    history_ref: bytes
    legal_basis: str
    requested_by: str
    state: str
    erased_key_ids: tuple[str, ...]
    payloads_deleted: int
    index_rows_deleted: int
    event_id: str | None
    requested_at: datetime
    erased_at: datetime | None
    caches_clear_by: datetime | None
    receipt: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "request_ref": self.request_ref, "legal_basis": self.legal_basis, "state": self.state,
            "requested_by": self.requested_by, "erased_key_ids": list(self.erased_key_ids),
            "payloads_deleted": self.payloads_deleted, "index_rows_deleted": self.index_rows_deleted,
            "event_id": self.event_id, "requested_at": _iso(self.requested_at),
            "erased_at": _iso(self.erased_at), "caches_clear_by": _iso(self.caches_clear_by),
            "receipt": self.receipt,
        }


def _iso(t: datetime | None) -> str | None:
    return t.isoformat() if t is not None else None


class ErasureStore(Protocol):
    """Erasure requests, legal holds, and the deletions of an erasure, for one tenant at a time.

    Every method MUST touch only ``tenant``'s rows. :meth:`begin` MUST be atomic with respect to
    :meth:`set_hold` for the same subject (``href``): a subject MUST NOT be put on hold while its
    erasure slips past the check; under hold it MUST raise LegalHoldError and record nothing. A
    repeated ``request_ref`` MUST return the stored record (ConflictError if it named another
    subject). :meth:`delete_data` MUST, in one transaction, delete every ciphertext sealed under
    any of ``key_ids`` and every subject-index row of ``subject_ref`` or of those keys, and add
    the counts to the record; it MUST keep the first event id and erasure time on a retry. It
    MUST NOT delete entries: the log still verifies. Records are never deleted (history).
    Driver errors MUST be translated into :mod:`sealtrail.errors` types.
    """

    async def begin(self, tenant: str, *, request_ref: str, href: bytes, subject_ref: bytes,
                    legal_basis: str, requested_by: str) -> ErasureRecord: ...
    async def delete_data(self, tenant: str, *, request_ref: str, subject_ref: bytes, key_ids: list[str],
                          event_id: str, erased_at: datetime, clear_by: datetime) -> ErasureRecord: ...
    async def finish(self, tenant: str, request_ref: str, receipt: str) -> ErasureRecord: ...
    async def set_hold(self, tenant: str, href: bytes, *, reason: str, case_ref: str | None,
                       set_by: str) -> None: ...
    async def clear_hold(self, tenant: str, href: bytes, *, reason: str, released_by: str) -> bool:
        """Release the subject's hold, recording the hold as set with the release's ``reason``, who
        and when, in one transaction; whether there was a hold to release."""
        ...
    async def released_holds(self, tenant: str, href: bytes, limit: int) -> list[dict[str, Any]]:
        """The subject's released holds, newest first: reason, case_ref, set_by, set_at,
        release_reason, released_by, released_at (times as ISO 8601)."""
        ...
    async def history(self, tenant: str, *, href: bytes | None, request_ref: str | None,
                      limit: int) -> list[ErasureRecord]:
        """Erasures of one subject, one request, or (neither given) the latest ones; newest first."""
        ...
    async def hold(self, tenant: str, href: bytes) -> dict[str, Any] | None:
        """The subject's hold (reason, case_ref, set_by, set_at as ISO 8601), or None."""
        ...


class RetentionStore(Protocol):
    """Retention settings, retention runs and the deletion of a period's ciphertexts.

    Every method but :meth:`tenants` MUST touch only ``tenant``'s rows. :meth:`locked` MUST let
    at most one holder work on a tenant at a time (the others get False and MUST skip it).
    :meth:`start_run` MUST be idempotent and keep the first event id. :meth:`delete_chunk` MUST
    delete only ciphertexts whose first key id (the period key) is ``key_id``, at most ``limit``,
    and add the count to the run in the same transaction. Nothing here deletes entries. Driver
    errors MUST be translated into :mod:`sealtrail.errors` types.
    """

    async def tenants(self, tenant: str | None) -> list[tuple[str, int | None]]:
        """(tenant, retention months or None) of every tenant (or just ``tenant``), by tenant id."""
        ...
    def locked(self, tenant: str) -> AbstractAsyncContextManager[bool]:
        """Hold the tenant's retention lock for the block; yields whether it was taken."""
        ...
    async def pending_runs(self, tenant: str) -> list[tuple[str, str]]:
        """(period, period key id) of the runs not yet done, by period."""
        ...
    async def active_period_keys(self, tenant: str) -> dict[str, str]:
        """period -> key id of the tenant's active period keys."""
        ...
    async def start_run(self, tenant: str, period: str, key_id: str, event_id: str) -> None: ...
    async def delete_chunk(self, tenant: str, period: str, key_id: str, limit: int) -> int: ...
    async def run_state(self, tenant: str, period: str) -> tuple[int, str] | None:
        """(payloads deleted, event id) of the run, or None."""
        ...
    async def finish_run(self, tenant: str, period: str) -> None: ...


@dataclass(frozen=True, slots=True)
class StoredSession:
    """A console session as stored: whose it is (the API key's principal, never the key), the
    SHA-256 of its CSRF token, and when it was opened and last used (seconds since the epoch)."""

    principal: Principal
    csrf_hash: bytes
    created: float
    last_used: float


class ConsoleSessionStore(Protocol):
    """Console sessions in the query service's database, shared by every query process on it.

    Sessions are found by the SHA-256 of their id (the cookie). The store MUST keep only that hash
    and the SHA-256 of the session's CSRF token, never either token nor an API key, so reading
    the table does not let anyone act as a signed-in person. A session deleted through one
    process MUST be gone for every process. Driver errors MUST be translated into
    :mod:`sealtrail.errors` types.
    """

    async def add(self, session_hash: bytes, session: StoredSession, *, max_sessions: int) -> None:
        """Store a new session; then, while more than ``max_sessions`` are stored, delete the oldest."""
        ...
    async def find(self, session_hash: bytes) -> StoredSession | None: ...
    async def touch(self, session_hash: bytes, now: float) -> None:
        """Record a use of the session at ``now``."""
        ...
    async def delete(self, session_hash: bytes) -> None: ...
    async def delete_expired(self, now: float, *, idle_s: float, max_age_s: float) -> int:
        """Delete every session unused for ``idle_s`` or opened ``max_age_s`` ago; how many."""
        ...
