"""The witness's storage port: the logs it witnesses and the latest checkpoint it cosigned of each.

Adapters: :mod:`services.witness.sqlite` and :mod:`services.witness.postgres`. Both pass
``tests/contract/witness_store_contract.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from sealtrail.core.witness import LogRecord


class WitnessStore(Protocol):
    """The witness's record of each log it witnesses.

    The record is what keeps a witness honest: it MUST NOT cosign a checkpoint unless
    :meth:`advance` recorded it first, so every state a witness ever cosigned is a step of one
    chain of consistent checkpoints, across concurrent requests, processes and crashes.
    """

    async def put_log(self, origin: str, vkeys: Sequence[str]) -> None:
        """Add a log, or replace the checkpoint keys of a known one.

        MUST keep a known log's latest cosigned size, root and note. Durable when it returns.
        """
        ...

    async def disable_log(self, origin: str) -> bool:
        """Drop every checkpoint key of a log, so that nothing of it is cosigned any more; return
        whether the log was known. MUST keep its record: forgetting it and adding the log again
        would start from size 0 and could cosign a split view. Durable when it returns."""
        ...

    async def get_log(self, origin: str) -> LogRecord | None:
        """The record of ``origin``, or None when the witness does not know the log."""
        ...

    async def list_logs(self) -> list[LogRecord]:
        """Every known log, ordered by origin."""
        ...

    async def advance(self, origin: str, *, expected: LogRecord, size: int, root: bytes, note: str) -> bool:
        """Compare-and-swap the latest cosigned checkpoint of ``origin``.

        MUST replace (size, root, note) only if the stored size and root are still
        ``expected.size`` and ``expected.root``, with no other write to that log between the
        comparison and the replacement, and return True once the new record is durable.
        MUST change nothing and return False otherwise (another request advanced the log first).
        """
        ...

    async def close(self) -> None:
        """Release connections. The store is unusable afterwards."""
        ...
