"""PostgreSQL adapter of the :class:`~sealtrail.core.keystore.KeyStore` port (table ``data_keys``).

Keys are stored wrapped by the KEK (``wrapped`` = nonce || ciphertext, ``kek_id`` beside it) and
unwrapped on read. Concurrent creators converge through ``INSERT ... ON CONFLICT DO NOTHING`` on
the partial unique indexes of migration 0001 (one active key per subject, one key per period
ever) followed by a fresh read. Erasing overwrites the wrapped secret with NULL, drops the
``subject_ref`` link and keeps the id as a tombstone; nothing ever turns an erased row active
again, so an erased key cannot come back. Every statement commits on its own (durable on return).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import asyncpg

from sealtrail.core.keystore import KeyStore, check_period, check_subject_ref
from sealtrail.core.sealing import NONCE_BYTES, DataKey, Kek, KeyKind, WrappedKey
from sealtrail.errors import ConcurrentWriteError, PeriodExpiredError, SealingError
from sealtrail.infra.pgerrors import translated

_KEY_ID = re.compile(r"^[0-9a-f]{32}$")
_CONVERGE_ATTEMPTS = 8

_SELECT_SUBJECT = (
    "SELECT key_id, wrapped, kek_id FROM data_keys"
    " WHERE tenant_id = $1 AND kind = 'subject' AND subject_ref = $2 AND state = 'active'"
)
_INSERT_SUBJECT = (
    "INSERT INTO data_keys (key_id, tenant_id, kind, subject_ref, wrapped, kek_id)"
    " VALUES ($1, $2, 'subject', $3, $4, $5)"
    " ON CONFLICT (tenant_id, subject_ref) WHERE kind = 'subject' AND state = 'active' DO NOTHING"
    " RETURNING key_id"
)
_SELECT_PERIOD = (
    "SELECT key_id, wrapped, kek_id, state FROM data_keys"
    " WHERE tenant_id = $1 AND kind = 'period' AND period = $2"
)
_INSERT_PERIOD = (
    "INSERT INTO data_keys (key_id, tenant_id, kind, period, wrapped, kek_id)"
    " VALUES ($1, $2, 'period', $3, $4, $5)"
    " ON CONFLICT (tenant_id, period) WHERE kind = 'period' DO NOTHING RETURNING key_id"
)
_ERASE_SUBJECT = (
    "UPDATE data_keys SET state = 'erased', wrapped = NULL, kek_id = NULL, subject_ref = NULL,"
    " erased_at = now()"
    " WHERE tenant_id = $1 AND kind = 'subject' AND subject_ref = $2 AND state = 'active' RETURNING key_id"
)
_EXPIRE_PERIOD = (
    "UPDATE data_keys SET state = 'erased', wrapped = NULL, kek_id = NULL, erased_at = now()"
    " WHERE tenant_id = $1 AND kind = 'period' AND period = $2 AND state = 'active' RETURNING key_id"
)


class PostgresKeyStore(KeyStore):
    """Subject and period keys in PostgreSQL, wrapped by ``kek``. The tenant row must exist."""

    def __init__(self, *, pool: asyncpg.Pool, kek: Kek) -> None:
        self._pool = pool
        self._kek = kek

    async def get_or_create_subject_key(self, tenant: str, subject_ref: bytes) -> DataKey:
        ref = check_subject_ref(subject_ref)
        with translated("subject key"):
            for _ in range(_CONVERGE_ATTEMPTS):
                row = await self._pool.fetchrow(_SELECT_SUBJECT, tenant, ref)
                if row is not None:
                    return self._unwrap(tenant, row, "subject")
                key = DataKey.generate("subject")
                if await self._pool.fetchval(_INSERT_SUBJECT, key.key_id, tenant, ref,
                                             *self._wrap(tenant, key)) is not None:
                    return key
        # Only reachable if the key is erased and re-created between every read and insert.
        raise ConcurrentWriteError("subject key did not settle; retry")

    async def get_or_create_period_key(self, tenant: str, period: str) -> DataKey:
        check_period(period)
        with translated("period key"):
            for _ in range(_CONVERGE_ATTEMPTS):
                row = await self._pool.fetchrow(_SELECT_PERIOD, tenant, period)
                if row is not None:
                    if row["state"] != "active":
                        raise PeriodExpiredError(f"period {period} has expired")
                    return self._unwrap(tenant, row, "period")
                key = DataKey.generate("period")
                if await self._pool.fetchval(_INSERT_PERIOD, key.key_id, tenant, period,
                                             *self._wrap(tenant, key)) is not None:
                    return key
        raise ConcurrentWriteError("period key did not settle; retry")

    async def get_keys(self, tenant: str, key_ids: Iterable[str]) -> dict[str, DataKey | None]:
        wanted = list(dict.fromkeys(key_ids))
        found: dict[str, DataKey | None] = dict.fromkeys(wanted)
        valid = [k for k in wanted if isinstance(k, str) and _KEY_ID.match(k)]
        if not valid:
            return found
        with translated("read data keys"):
            rows = await self._pool.fetch(
                "SELECT key_id, kind, state, wrapped, kek_id FROM data_keys"
                " WHERE tenant_id = $1 AND key_id = ANY($2::text[])", tenant, valid,
            )
        for row in rows:
            kind: KeyKind = row["kind"]
            found[row["key_id"]] = (
                self._unwrap(tenant, row, kind) if row["state"] == "active"
                else DataKey(row["key_id"], kind, b"", "erased")
            )
        return found

    async def erase_subject(self, tenant: str, subject_ref: bytes) -> list[str]:
        ref = check_subject_ref(subject_ref)
        with translated("erase subject key"):
            rows = await self._pool.fetch(_ERASE_SUBJECT, tenant, ref)
        return [r["key_id"] for r in rows]

    async def expire_period(self, tenant: str, period: str) -> list[str]:
        check_period(period)
        with translated("expire period key"):
            rows = await self._pool.fetch(_EXPIRE_PERIOD, tenant, period)
        return [r["key_id"] for r in rows]

    def _wrap(self, tenant: str, key: DataKey) -> tuple[bytes, str]:
        wrapped = self._kek.wrap(key, tenant=tenant)
        return wrapped.nonce + wrapped.ciphertext, wrapped.kek_id

    def _unwrap(self, tenant: str, row: Any, kind: KeyKind) -> DataKey:
        blob = bytes(row["wrapped"])
        if len(blob) <= NONCE_BYTES:
            raise SealingError(f"stored key {row['key_id']} is malformed")
        wrapped = WrappedKey(row["kek_id"], row["key_id"], kind, blob[:NONCE_BYTES], blob[NONCE_BYTES:])
        return self._kek.unwrap(wrapped, tenant=tenant)
