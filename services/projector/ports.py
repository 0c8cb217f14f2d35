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
    "rollup_agent_daily", "rollup_rate_limits", "subject_index", "sessions", "tool_definitions", "server_tools",
    "tool_definition_changes", "tool_usage",
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
