"""Loading the KEK, writing a new one, and wrapping each tenant's index key with it.

KEK file format: 64 hex digits (32 bytes) and an optional newline, in a file that only its owner
may read (mode 0600; a file readable by group or others is refused). ``SEALTRAIL_KEK`` (hex) is
accepted for development. A KMS can later supply the same 32 bytes behind :func:`load_kek`.

The tenant index key (the BLAKE3 key of ``subject_ref``) is wrapped with
:meth:`~sealtrail.core.sealing.Kek.wrap` as a data-key envelope with the reserved key id
:data:`INDEX_KEY_ID` and kind ``period``; the wrap's AAD binds it to the tenant and KEK. It is
stored in ``tenants.index_key`` as ``nonce || ciphertext`` and never in ``data_keys``, whose ids
are random, so the reserved id names nothing else.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from sealtrail.core.sealing import KEY_BYTES, NONCE_BYTES, DataKey, Kek, WrappedKey
from sealtrail.errors import InvalidInputError, SealingError, ServiceStartError
from sealtrail.infra.auth import AuthStore
from sealtrail.infra.settings import Settings

INDEX_KEY_ID = "0" * 32


def parse_kek_hex(text: str) -> Kek:
    try:
        raw = bytes.fromhex(text.strip())
    except ValueError as e:
        raise ServiceStartError("the KEK must be 64 hex digits") from e
    if len(raw) != KEY_BYTES:
        raise ServiceStartError("the KEK must be 64 hex digits")
    return Kek(raw)


def load_kek(settings: Settings) -> Kek:
    """The KEK named by ``SEALTRAIL_KEK_FILE`` (preferred) or ``SEALTRAIL_KEK``; ServiceStartError if none."""
    if settings.kek_file is not None:
        path = settings.kek_file
        try:
            mode = path.stat().st_mode
            text = path.read_text(encoding="ascii")
        except OSError as e:
            raise ServiceStartError(f"cannot read the KEK file {path}: {e.strerror}") from e
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ServiceStartError(f"the KEK file {path} must be readable by its owner only (chmod 600)")
        return parse_kek_hex(text)
    if settings.kek is not None:
        return parse_kek_hex(settings.kek.get_secret_value())
    raise ServiceStartError("no KEK: set SEALTRAIL_KEK_FILE (see `sealtrail admin kek generate`)")


def write_kek_file(path: Path) -> Kek:
    """Create ``path`` (mode 0600, never overwriting) holding a new random KEK; return it."""
    kek_bytes = os.urandom(KEY_BYTES)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as e:
        raise InvalidInputError(f"{path} already exists; a KEK is never overwritten") from e
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(kek_bytes.hex() + "\n")
        f.flush()
        os.fsync(f.fileno())
    return Kek(kek_bytes)


class IndexKeyWrapper:
    """Wraps and unwraps one tenant's index key with a KEK (see the module docstring)."""

    def __init__(self, *, kek: Kek, tenant: str) -> None:
        self._kek = kek
        self._tenant = tenant

    @property
    def kek_id(self) -> str:
        return self._kek.kek_id

    def wrap(self, key: bytes) -> bytes:
        wrapped = self._kek.wrap(DataKey(INDEX_KEY_ID, "period", key), tenant=self._tenant)
        return wrapped.nonce + wrapped.ciphertext

    def unwrap(self, blob: bytes, *, kek_id: str) -> bytes:
        if len(blob) <= NONCE_BYTES:
            raise SealingError(f"index key of tenant {self._tenant} is malformed")
        wrapped = WrappedKey(kek_id, INDEX_KEY_ID, "period", blob[:NONCE_BYTES], blob[NONCE_BYTES:])
        return self._kek.unwrap(wrapped, tenant=self._tenant).secret


class TenantIndexKeys:
    """Each tenant's index key (the BLAKE3 key of ``subject_ref``), unwrapped once with the KEK.

    An index key never changes, so it is kept for the life of the process.
    """

    def __init__(self, *, store: AuthStore, kek: Kek) -> None:
        self._store = store
        self._kek = kek
        self._keys: dict[str, bytes] = {}

    async def get(self, tenant: str) -> bytes:
        key = self._keys.get(tenant)
        if key is None:
            row = await self._store.get_tenant(tenant)
            wrapper = IndexKeyWrapper(kek=self._kek, tenant=tenant)
            key = wrapper.unwrap(row.wrapped_index_key, kek_id=row.kek_id)
            self._keys[tenant] = key
        return key
