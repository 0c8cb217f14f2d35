"""SQLite adapter of the :class:`~sealtrail.core.keystore.KeyStore` port (table ``data_keys``).

Keys are stored wrapped by the KEK as in :mod:`sealtrail.infra.keystore_postgres`. Creation is
one write transaction (read, then insert if absent) on the database's single writer thread, and
SQLite's write lock orders it against any other process, so concurrent creators converge; the
partial unique indexes of migration 0001 back this up. Erasing overwrites the wrapped secret and
the ``subject_ref`` link with NULL (``secure_delete`` zeroes the old bytes) and then truncates the
WAL, so no old frame keeps the wrapped secret. Every write is durable when it returns.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable
from typing import Any

from sealtrail.core.keystore import KeyStore, check_period, check_subject_ref
from sealtrail.core.sealing import NONCE_BYTES, DataKey, Kek, KeyKind, WrappedKey
from sealtrail.errors import PeriodExpiredError, SealingError
from sealtrail.infra.sqlite import SqliteDatabase, db_now, translated

_KEY_ID = re.compile(r"^[0-9a-f]{32}$")

_SELECT_SUBJECT = (
    "SELECT key_id, wrapped, kek_id, state FROM data_keys"
    " WHERE tenant_id = ? AND kind = 'subject' AND subject_ref = ? AND state = 'active'"
)
_SELECT_PERIOD = (
    "SELECT key_id, wrapped, kek_id, state FROM data_keys"
    " WHERE tenant_id = ? AND kind = 'period' AND period = ?"
)
_INSERT = (
    "INSERT INTO data_keys (key_id, tenant_id, kind, subject_ref, period, wrapped, kek_id)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_ERASE_SUBJECT = (
    "UPDATE data_keys SET state = 'erased', wrapped = NULL, kek_id = NULL, subject_ref = NULL, erased_at = ?"
    " WHERE tenant_id = ? AND kind = 'subject' AND subject_ref = ? AND state = 'active' RETURNING key_id"
)
_EXPIRE_PERIOD = (
    "UPDATE data_keys SET state = 'erased', wrapped = NULL, kek_id = NULL, erased_at = ?"
    " WHERE tenant_id = ? AND kind = 'period' AND period = ? AND state = 'active' RETURNING key_id"
)

_Row = tuple[Any, ...]


class SqliteKeyStore(KeyStore):
    """Subject and period keys in SQLite, wrapped by ``kek``. The tenant row must exist."""

    def __init__(self, *, db: SqliteDatabase, kek: Kek) -> None:
        self._db = db
        self._kek = kek

    async def get_or_create_subject_key(self, tenant: str, subject_ref: bytes) -> DataKey:
        ref = check_subject_ref(subject_ref)
        return await self._get_or_create(tenant, "subject", _SELECT_SUBJECT, ref)

    async def get_or_create_period_key(self, tenant: str, period: str) -> DataKey:
        return await self._get_or_create(tenant, "period", _SELECT_PERIOD, check_period(period))

    async def _get_or_create(self, tenant: str, kind: KeyKind, select: str, slot: bytes | str) -> DataKey:
        with translated(f"{kind} key"):
            row = await self._db.read(lambda c: c.execute(select, (tenant, slot)).fetchone())
            if row is None:
                fresh = DataKey.generate(kind)
                wrapped, kek_id = self._wrap(tenant, fresh)

                def create(conn: sqlite3.Connection) -> _Row | None:
                    found: _Row | None = conn.execute(select, (tenant, slot)).fetchone()
                    if found is not None:
                        return found
                    ref, period = (slot, None) if kind == "subject" else (None, slot)
                    conn.execute(_INSERT, (fresh.key_id, tenant, kind, ref, period, wrapped, kek_id))
                    return None

                row = await self._db.write(create)
                if row is None:
                    return fresh
        if row[3] != "active":
            raise PeriodExpiredError(f"period {slot!s} has expired")
        return self._unwrap(tenant, row[0], row[1], row[2], kind)

    async def get_keys(self, tenant: str, key_ids: Iterable[str]) -> dict[str, DataKey | None]:
        wanted = list(dict.fromkeys(key_ids))
        found: dict[str, DataKey | None] = dict.fromkeys(wanted)
        valid = [k for k in wanted if isinstance(k, str) and _KEY_ID.match(k)]
        if not valid:
            return found
        marks = ",".join("?" * len(valid))
        sql = (f"SELECT key_id, kind, state, wrapped, kek_id FROM data_keys"
               f" WHERE tenant_id = ? AND key_id IN ({marks})")
        with translated("read data keys"):
            rows = await self._db.read(lambda c: c.execute(sql, (tenant, *valid)).fetchall())
        for key_id, kind, state, wrapped, kek_id in rows:
            found[key_id] = (self._unwrap(tenant, key_id, wrapped, kek_id, kind) if state == "active"
                             else DataKey(key_id, kind, b"", "erased"))
        return found

    async def erase_subject(self, tenant: str, subject_ref: bytes) -> list[str]:
        ref = check_subject_ref(subject_ref)
        return await self._destroy(_ERASE_SUBJECT, tenant, ref, "erase subject key")

    async def expire_period(self, tenant: str, period: str) -> list[str]:
        return await self._destroy(_EXPIRE_PERIOD, tenant, check_period(period), "expire period key")

    async def _destroy(self, sql: str, tenant: str, slot: bytes | str, what: str) -> list[str]:
        with translated(what):
            rows = await self._db.write(lambda c: c.execute(sql, (db_now(), tenant, slot)).fetchall())
            if rows:
                await self._db.truncate_wal()
        return [r[0] for r in rows]

    def _wrap(self, tenant: str, key: DataKey) -> tuple[bytes, str]:
        wrapped = self._kek.wrap(key, tenant=tenant)
        return wrapped.nonce + wrapped.ciphertext, wrapped.kek_id

    def _unwrap(self, tenant: str, key_id: str, blob: bytes, kek_id: str, kind: KeyKind) -> DataKey:
        if len(blob) <= NONCE_BYTES:
            raise SealingError(f"stored key {key_id} is malformed")
        wrapped = WrappedKey(kek_id, key_id, kind, blob[:NONCE_BYTES], blob[NONCE_BYTES:])
        return self._kek.unwrap(wrapped, tenant=tenant)
