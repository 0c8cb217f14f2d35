"""The ledger's checkpoint keys: an Ed25519 note key and a timestamped cosigner key.

Private keys live in files (0600) in the signing-key directory, named ``<purpose>-<keyid>.key``;
their public parts and validity windows live in the ``signing_keys`` table (through a
:class:`~services.ledger.ports.SigningKeyStore`), from which ``GET /v1/keys``
publishes them. Rotation closes the current window and opens a new one; old checkpoints stay
verifiable under the key that signed them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sealtrail.core.cosignature import CosignatureSigner
from sealtrail.core.note import Ed25519Signer
from sealtrail.errors import ServiceStartError
from services.ledger.ports import SigningKeyRow, SigningKeyStore

DEFAULT_KEY_NAME = "sealtrail.local/ledger"


@dataclass(frozen=True)
class CheckpointKeys:
    """The active pair: ``signer`` signs the checkpoint, ``cosigner`` adds its signed time."""

    signer: Ed25519Signer
    cosigner: CosignatureSigner


def _write_secret(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text + "\n")


async def rotate(
    store: SigningKeyStore, *, key_dir: Path, name: str = DEFAULT_KEY_NAME
) -> CheckpointKeys:
    """Make a new active pair: files first, then one transaction closing the old windows."""
    keys = CheckpointKeys(Ed25519Signer.generate(name), CosignatureSigner.generate(f"{name}-clock"))
    _write_secret(key_dir / f"checkpoint-{keys.signer.key_id:08x}.key", keys.signer.private_key())
    _write_secret(key_dir / f"cosign-{keys.cosigner.key_id:08x}.key", keys.cosigner.private_key())
    await store.replace_active_keys([
        SigningKeyRow(keys.signer.name, f"{keys.signer.key_id:08x}", "checkpoint",
                      keys.signer.verifier().vkey()),
        SigningKeyRow(keys.cosigner.name, f"{keys.cosigner.key_id:08x}", "cosign",
                      keys.cosigner.verifier().vkey()),
    ])
    return keys


def load_keys(key_dir: Path, key_ids: Mapping[str, str]) -> CheckpointKeys | None:
    """The pair named by ``key_ids`` (purpose → key id), read from its files.

    Returns None when no key was ever made. Raises ServiceStartError when a key file is missing.
    """
    if not key_ids:
        return None
    try:
        signer = Ed25519Signer.from_private_key(_read(key_dir / f"checkpoint-{key_ids['checkpoint']}.key"))
        cosigner = CosignatureSigner.from_private_key(_read(key_dir / f"cosign-{key_ids['cosign']}.key"))
    except KeyError as e:
        raise ServiceStartError(f"signing_keys has no active {e.args[0]} key") from e
    return CheckpointKeys(signer, cosigner)


async def load_active(store: SigningKeyStore, *, key_dir: Path) -> CheckpointKeys | None:
    """The active pair, or None when no key was ever made (see :func:`load_keys`)."""
    return load_keys(key_dir, await store.active_key_ids())


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError as e:
        raise ServiceStartError(f"signing key file {path} is missing or unreadable") from e
