"""The key-store port: where subject and period data keys live, and where they are destroyed.

Adapters (memory here; SQLite and PostgreSQL in the storage layer) all pass
``tests/contract/keystore_contract.py``. A persistent adapter stores keys wrapped by a
:class:`~sealtrail.core.sealing.Kek` and unwraps them on read; callers only ever see
:class:`~sealtrail.core.sealing.DataKey`.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TypeVar

from sealtrail.core.fields import PERIOD_PATTERN
from sealtrail.core.sealing import KEY_BYTES, DataKey, KeyKind
from sealtrail.errors import InvalidInputError, PeriodExpiredError

_PERIOD = re.compile(PERIOD_PATTERN)
_Slot = TypeVar("_Slot", tuple[str, bytes], tuple[str, str])


def period_of(moment: datetime) -> str:
    """The UTC month ``'YYYY-MM'`` of ``moment`` (timezone-aware), which names its period key."""
    if moment.tzinfo is None:
        raise ValueError("moment must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m")


def check_period(period: str) -> str:
    """Return ``period`` if it is a UTC month ``'YYYY-MM'``; raise :class:`InvalidInputError` if not."""
    if not isinstance(period, str) or not _PERIOD.fullmatch(period):
        raise InvalidInputError("period must be a UTC month 'YYYY-MM'")
    return period


def check_subject_ref(subject_ref: bytes) -> bytes:
    """Return ``subject_ref`` if it is 32 bytes (see ``sealing.subject_ref``); raise if not."""
    if not isinstance(subject_ref, bytes) or len(subject_ref) != KEY_BYTES:
        raise InvalidInputError(f"subject_ref must be {KEY_BYTES} bytes")
    return subject_ref


class KeyStore(ABC):
    """Stores subject keys (one per tenant and subject) and period keys (one per tenant and month).

    Every method is scoped to one ``tenant``: it MUST NOT read, return, create or destroy another
    tenant's keys, even when given another tenant's ``key_id`` or ``subject_ref``. Arguments are
    checked with :func:`check_period` and :func:`check_subject_ref`. A key's lifecycle is
    ``active → erased``, and ``erased`` is terminal.
    """

    @abstractmethod
    async def get_or_create_subject_key(self, tenant: str, subject_ref: bytes) -> DataKey:
        """Return the subject's active key, creating it if the subject has none.

        MUST be durable before it returns (a key that sealed a payload must never be lost).
        Concurrent callers, in this process or another, MUST converge on one key: all of them get
        the same ``key_id`` and secret. If the subject's key was erased, MUST create a new key with
        a new random ``key_id``; it MUST NOT return the erased key or reuse its id.
        """

    @abstractmethod
    async def get_or_create_period_key(self, tenant: str, period: str) -> DataKey:
        """Return the key of ``period`` (``'YYYY-MM'``), creating it if there is none.

        Durable and convergent as :meth:`get_or_create_subject_key`. A period has one key ever:
        once :meth:`expire_period` ran, this MUST raise :class:`PeriodExpiredError`; it MUST NOT
        return the old key nor create a new one (an expired month takes no new payloads).
        """

    @abstractmethod
    async def get_keys(self, tenant: str, key_ids: Iterable[str]) -> dict[str, DataKey | None]:
        """Look up keys by id; the result has one entry per requested id.

        An active key comes back with its secret. An erased or expired key MUST come back either as
        ``None`` or as a tombstone (state ``erased``, no secret); never with its secret. An id the
        tenant does not own (unknown, or another tenant's) MUST come back as ``None``.
        """

    @abstractmethod
    async def erase_subject(self, tenant: str, subject_ref: bytes) -> list[str]:
        """Destroy the subject's key material irrevocably; return the ids of the keys destroyed.

        When it returns, the secret MUST be gone from the store (overwritten or deleted, not
        flagged) and the link from ``subject_ref`` to the key id MUST be gone, so the erased id
        links to nothing. Idempotent: a subject with no active key yields ``[]``. Other subjects'
        keys and period keys MUST NOT be touched. Caches outside the store are the caller's duty.
        """

    @abstractmethod
    async def expire_period(self, tenant: str, period: str) -> list[str]:
        """Destroy the key material of ``period`` irrevocably; return the ids of the keys destroyed.

        The secret MUST be gone when it returns; the key id stays known as expired (see
        :meth:`get_or_create_period_key`). Idempotent: a period with no active key yields ``[]``.
        Subject keys and other periods' keys MUST NOT be touched.
        """


class MemoryKeyStore(KeyStore):
    """An in-memory key store for tests and the demo; keys live and die with the process.

    No method awaits between reading and writing its maps, so on one event loop each call is
    atomic and concurrent creators converge without a lock (and the store is not tied to a loop).
    """

    def __init__(self) -> None:
        self._subjects: dict[tuple[str, bytes], str] = {}
        self._periods: dict[tuple[str, str], str] = {}
        self._keys: dict[tuple[str, str], DataKey] = {}

    async def get_or_create_subject_key(self, tenant: str, subject_ref: bytes) -> DataKey:
        slot = (tenant, check_subject_ref(subject_ref))
        return self._get_or_create(tenant, self._subjects, slot, "subject")

    async def get_or_create_period_key(self, tenant: str, period: str) -> DataKey:
        slot = (tenant, check_period(period))
        key = self._get_or_create(tenant, self._periods, slot, "period")
        if key.state != "active":
            raise PeriodExpiredError(f"period {period} has expired")
        return key

    async def get_keys(self, tenant: str, key_ids: Iterable[str]) -> dict[str, DataKey | None]:
        return {key_id: self._keys.get((tenant, key_id)) for key_id in key_ids}

    async def erase_subject(self, tenant: str, subject_ref: bytes) -> list[str]:
        slot = (tenant, check_subject_ref(subject_ref))
        return self._destroy(tenant, self._subjects.pop(slot, None))

    async def expire_period(self, tenant: str, period: str) -> list[str]:
        slot = (tenant, check_period(period))
        return self._destroy(tenant, self._periods.get(slot))

    def _get_or_create(self, tenant: str, links: dict[_Slot, str], slot: _Slot, kind: KeyKind) -> DataKey:
        key_id = links.get(slot)
        if key_id is not None:
            return self._keys[(tenant, key_id)]
        key = DataKey.generate(kind)
        links[slot] = key.key_id
        self._keys[(tenant, key.key_id)] = key
        return key

    def _destroy(self, tenant: str, key_id: str | None) -> list[str]:
        if key_id is None or self._keys[(tenant, key_id)].state != "active":
            return []
        self._keys[(tenant, key_id)] = self._keys[(tenant, key_id)].erased()
        return [key_id]
