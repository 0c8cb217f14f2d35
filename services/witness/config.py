"""The witness's configuration: its cosigning key file, its store, and the logs file.

Logs file (TOML), one table per witnessed log::

    [[log]]
    origin = "sealtrail.example/log/acme"
    vkeys = ["sealtrail.example/log/acme+1a2b3c4d+AQ..."]

Each vkey is a log's Ed25519 checkpoint key (signature type 0x01). A bad file is refused whole,
naming the table and the field; the witness's records of known logs are never touched by it.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sealtrail.core.checkpoint import check_origin
from sealtrail.core.cosignature import CosignatureSigner
from sealtrail.core.note import Ed25519Verifier
from sealtrail.errors import InvalidInputError, NoteError
from sealtrail.infra.servicekey import read_private_key
from services.witness.ports import WitnessStore

DB_ENV = "SEALTRAIL_WITNESS_DB"
KEY_ENV = "SEALTRAIL_WITNESS_KEY_FILE"
DEFAULT_DB = "witness.db"


@dataclass(frozen=True)
class LogConfig:
    """One witnessed log: its origin line and its checkpoint keys."""

    origin: str
    vkeys: tuple[str, ...]


def check_log(origin: str, vkeys: list[str] | tuple[str, ...], where: str = "") -> LogConfig:
    """Validate one log's origin and keys; InvalidInputError naming ``where`` otherwise."""
    try:
        check_origin(origin)
    except NoteError as e:
        raise InvalidInputError(f"{where}origin: {e}") from e
    if not vkeys:
        raise InvalidInputError(f"{where}vkeys: at least one checkpoint key is needed")
    for n, vkey in enumerate(vkeys):
        try:
            Ed25519Verifier.from_vkey(vkey)
        except NoteError as e:
            raise InvalidInputError(f"{where}vkeys[{n}]: {e}") from e
    return LogConfig(origin, tuple(vkeys))


def parse_logs(text: str, *, source: str) -> list[LogConfig]:
    """The logs of a logs file's text; InvalidInputError naming ``source``, the table and the field."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise InvalidInputError(f"{source}: not valid TOML: {e}") from e
    unknown = set(data) - {"log"}
    if unknown:
        raise InvalidInputError(f"{source}: unknown key {sorted(unknown)[0]!r} (expected [[log]] tables)")
    tables = data.get("log", [])
    if not isinstance(tables, list):
        raise InvalidInputError(f"{source}: 'log' must be an array of tables ([[log]])")
    logs = [_log_table(t, f"{source}: log[{n}].") for n, t in enumerate(tables)]
    origins = [log.origin for log in logs]
    if len(set(origins)) != len(origins):
        raise InvalidInputError(f"{source}: a log origin is listed twice")
    return logs


def _log_table(table: Any, where: str) -> LogConfig:
    if not isinstance(table, dict):
        raise InvalidInputError(f"{where[:-1]} must be a table")
    extra = set(table) - {"origin", "vkeys"}
    if extra:
        raise InvalidInputError(f"{where}{sorted(extra)[0]}: unknown field")
    origin, vkeys = table.get("origin"), table.get("vkeys")
    if not isinstance(origin, str):
        raise InvalidInputError(f"{where}origin: a string is needed")
    if not isinstance(vkeys, list) or not all(isinstance(v, str) for v in vkeys):
        raise InvalidInputError(f"{where}vkeys: a list of vkey strings is needed")
    return check_log(origin, vkeys, where)


def read_logs_file(path: Path) -> list[LogConfig]:
    """Read and validate a logs file."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidInputError(f"cannot read the logs file {path}: {getattr(e, 'strerror', None) or e}") from e
    return parse_logs(text, source=str(path))


async def apply_logs(store: WitnessStore, logs: list[LogConfig]) -> None:
    """Add each log to the store, or update its keys (its record is kept)."""
    for log in logs:
        await store.put_log(log.origin, log.vkeys)


# --- the key -----------------------------------------------------------------------------------


def write_key(path: Path, signer: CosignatureSigner) -> None:
    """Write the private key string to a new 0600 file; refuse to overwrite one."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as e:
        raise InvalidInputError(f"{path} exists; a witness key is never overwritten") from e
    except OSError as e:
        raise InvalidInputError(f"cannot create {path}: {e.strerror}") from e
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(signer.private_key() + "\n")


def load_key(path: Path) -> CosignatureSigner:
    """The witness's cosigning key from a 0600 file; ServiceStartError saying why otherwise."""
    return read_private_key(path, CosignatureSigner, what="witness key",
                            expected="a cosigner PRIVATE+KEY string (type 0x04)")

