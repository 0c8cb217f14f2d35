"""The ledger's checkpoint keys: an Ed25519 note key and a timestamped cosigner key.

Private keys live in files (0600) in the signing-key directory, named ``<purpose>-<keyid>.key``;
their public parts and validity windows live in the ``signing_keys`` table, from which
``GET /v1/keys`` publishes them. Rotation closes the current window and opens a new one; old
checkpoints stay verifiable under the key that signed them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sealtrail.core.cosignature import CosignatureSigner
from sealtrail.core.note import Ed25519Signer
from sealtrail.errors import ServiceStartError
from sealtrail.infra.postgres import Conn

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


async def rotate(conn: Conn, *, key_dir: Path, name: str = DEFAULT_KEY_NAME) -> CheckpointKeys:
    """Make a new active pair: files first, then one transaction closing the old windows."""
    keys = CheckpointKeys(Ed25519Signer.generate(name), CosignatureSigner.generate(f"{name}-clock"))
    _write_secret(key_dir / f"checkpoint-{keys.signer.key_id:08x}.key", keys.signer.private_key())
    _write_secret(key_dir / f"cosign-{keys.cosigner.key_id:08x}.key", keys.cosigner.private_key())
    async with conn.transaction():
        await conn.execute("LOCK TABLE signing_keys IN SHARE ROW EXCLUSIVE MODE")
        await conn.execute(
            "UPDATE signing_keys SET not_after = now()"
            " WHERE purpose IN ('checkpoint', 'cosign') AND not_after IS NULL"
        )
        await conn.executemany(
            "INSERT INTO signing_keys (key_name, key_id, purpose, vkey) VALUES ($1, $2, $3, $4)",
            [(keys.signer.name, f"{keys.signer.key_id:08x}", "checkpoint", keys.signer.verifier().vkey()),
             (keys.cosigner.name, f"{keys.cosigner.key_id:08x}", "cosign", keys.cosigner.verifier().vkey())],
        )
    return keys


async def load_active(conn: Conn, *, key_dir: Path) -> CheckpointKeys | None:
    """The active pair, locked FOR SHARE so a rotation waits until the caller's transaction ends.

    Returns None when no key was ever made. Raises ServiceStartError when a key file is missing.
    """
    rows = await conn.fetch(
        "SELECT purpose, key_id FROM signing_keys"
        " WHERE purpose IN ('checkpoint', 'cosign') AND not_after IS NULL FOR SHARE"
    )
    by_purpose = {r["purpose"]: r["key_id"] for r in rows}
    if not by_purpose:
        return None
    try:
        signer = Ed25519Signer.from_private_key(_read(key_dir / f"checkpoint-{by_purpose['checkpoint']}.key"))
        cosigner = CosignatureSigner.from_private_key(_read(key_dir / f"cosign-{by_purpose['cosign']}.key"))
    except KeyError as e:
        raise ServiceStartError(f"signing_keys has no active {e.args[0]} key") from e
    return CheckpointKeys(signer, cosigner)


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError as e:
        raise ServiceStartError(f"signing key file {path} is missing or unreadable") from e
