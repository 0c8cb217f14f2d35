"""Loading a service's Ed25519 signing key from a 0600 file (``PRIVATE+KEY+...``).

Ingest signs receipts with it; the query service signs erasure receipts with its own. The path
comes from ``SEALTRAIL_SERVICE_KEY_FILE``; each service process is given its own file. A file
that group or others may read is refused, and no message ever holds the key.
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import TypeVar

from sealtrail.core.note import Ed25519PrivateKey, Ed25519Signer
from sealtrail.errors import NoteError, ServiceStartError

K = TypeVar("K", bound=Ed25519PrivateKey)


def load_service_signer(path: Path | None, *, what: str = "service key") -> Ed25519Signer:
    """The Ed25519 signer in ``path``; ServiceStartError saying what to do when it is unusable."""
    if path is None:
        raise ServiceStartError(
            f"no {what}: set SEALTRAIL_SERVICE_KEY_FILE (see `sealtrail admin receipt-key generate`)")
    return read_private_key(path, Ed25519Signer, what=what, expected="an Ed25519 PRIVATE+KEY string")


def read_private_key(path: Path, kind: type[K], *, what: str, expected: str) -> K:
    """The private key of type ``kind`` in the 0600 file ``path``; ServiceStartError naming ``what``
    and the file (never the key) when it cannot be read, is open to others, or is not ``expected``."""
    try:
        mode, text = path.stat().st_mode, path.read_text(encoding="utf-8")
    except OSError as e:
        raise ServiceStartError(f"cannot read the {what} file {path}: {e.strerror}") from e
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ServiceStartError(f"the {what} file {path} must be readable by its owner only (chmod 600)")
    try:
        return kind.from_private_key(text.strip())
    except NoteError as e:
        raise ServiceStartError(f"the {what} file {path} is not {expected}") from e
