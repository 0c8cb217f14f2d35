"""The erasure port: the erasure and legal-hold records and the deletions an erasure makes.

Adapters: :class:`services.query.erasure_postgres.PostgresErasureStore` and
:class:`services.query.erasure_sqlite.SqliteErasureStore`. The steps that use it are in
:mod:`services.query.erasure`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol


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
    async def clear_hold(self, tenant: str, href: bytes) -> bool:
        """Whether a hold was cleared."""
        ...
    async def history(self, tenant: str, *, href: bytes | None, request_ref: str | None,
                      limit: int) -> list[ErasureRecord]:
        """Erasures of one subject, one request, or (neither given) the latest ones; newest first."""
        ...
    async def hold(self, tenant: str, href: bytes) -> dict[str, Any] | None:
        """The subject's hold (reason, case_ref, set_by, set_at as ISO 8601), or None."""
        ...
