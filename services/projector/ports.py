"""The projector's storage port: read committed entries of each log in index order and keep the read
models (rollups, subject index, sessions, tool definitions) in step with them, exactly once.

Adapters: :mod:`services.projector.postgres` (production, in the database the ledger writes) and
:mod:`services.projector.sqlite` (embedded default). Only the composition roots pick one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

DEFAULT_BATCH_ENTRIES = 5000

# Every read model, in the order they are truncated and digested.
READ_MODELS = (
    "projector_progress", "rollup_hourly", "rollup_tool_hourly", "rollup_tool_daily", "rollup_agent_hourly",
    "rollup_agent_daily", "rollup_tool_hourly_merged", "rollup_tenant_hourly", "rollup_rate_limits",
    "subject_index", "sessions", "tool_definitions", "server_tools", "tool_definition_changes", "tool_usage",
)
# Columns that record when a row was written, not what the log holds.
VOLATILE_COLUMNS = ("updated_at",)


@dataclass(frozen=True, slots=True)
class LogProgress:
    """A log's committed size and the next index the projector will read."""

    log_id: str
    tenant_id: str
    size: int
    next_idx: int

    @property
    def lag(self) -> int:
        return max(0, self.size - self.next_idx)


@dataclass(frozen=True, slots=True)
class BatchResult:
    """What one projected batch covered: entries ``[first, next_idx)``."""

    log_id: str
    first: int
    next_idx: int
    subject_rows: int

    @property
    def entries(self) -> int:
        return self.next_idx - self.first


@dataclass(frozen=True, slots=True)
class ModelDifference:
    """One read model whose stored rows differ from a rebuild from the log up to the same positions."""

    table: str
    only_stored: int
    only_rebuilt: int
    examples: tuple[str, ...]
    """A few differing rows as JSON (``-`` stored only, ``+`` rebuilt only); read models hold header
    facts only, and subject references are left out."""


@dataclass(frozen=True, slots=True)
class EntryDisagreement:
    """An entry whose stored copies (columns, leaf) disagree with its signed bytes."""

    log_id: str
    idx: int
    fields: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ReadModelReport:
    """What ``sealtrail admin check-read-models`` found: nothing when ``ok``."""

    positions: dict[str, int]
    entries_checked: int
    entries: list[EntryDisagreement]
    models: list[ModelDifference]

    @property
    def ok(self) -> bool:
        return not self.entries and not self.models


MAX_EXAMPLES = 5


class ProjectorStore(Protocol):
    """Read-model storage.

    :meth:`project_batch` MUST be atomic: the rows derived from a batch and the log's advanced
    progress become visible together or not at all, so after any crash every entry has been
    projected exactly once or not yet. It MUST read entries in index order from the stored
    progress and MUST NOT skip an index (SequenceGapError). When another projector is working
    on the same log it MUST return None and change nothing. Driver errors MUST be translated
    into :mod:`sealtrail.errors` types.
    """

    async def logs(self) -> list[LogProgress]:
        """Every log with its committed size and projection progress."""
        ...

    async def project_batch(self, log: LogProgress, *, max_entries: int, until: int | None = None
                            ) -> BatchResult | None:
        """Project up to ``max_entries`` entries (and none at or past ``until``)."""
        ...

    async def reset(self) -> None:
        """Empty every read model and progress row in one transaction."""
        ...

    async def digest(self) -> dict[str, str]:
        """A hash of each read model's content (volatile columns left out), to compare states."""
        ...

    async def check(self, *, batch_entries: int = DEFAULT_BATCH_ENTRIES) -> ReadModelReport:
        """Check every stored copy against the log, in one snapshot, changing nothing.

        MUST compare every entry's column copies and leaf with its bytes, and MUST rebuild every
        read model from the entries up to the stored progress in private scratch tables (never the
        stored ones, so projectors and readers go on meanwhile) and report each table whose rows
        differ from the stored ones.
        """
        ...
