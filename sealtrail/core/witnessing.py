"""The log side of c2sp.org/tlog-witness, pure: witness configuration and reading witnesses' answers.

Witness configuration (TOML, ``SEALTRAIL_WITNESS_CONFIG`` or ``--witness-config``)::

    quorum = 2                      # cosignatures that make a checkpoint witnessed
    retry_max_s = 60                # longest wait before retrying a witness that failed (default 60)

    [[witness]]
    name = "audit-firm"             # a label for logs and metrics
    vkey = "witness.example/w1+..." # the witness's cosignature key (type 0x04)
    url = "https://witness.example/w1"   # its submission prefix (POST <url>/add-checkpoint)

An answer is trusted only after it verifies: a 200 body's signature lines are checked against the
witness's vkey (lines from other keys are ignored; at least one must be the witness's, with a
non-zero timestamp), a 409 body must be one decimal size line.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from typing import Any

from sealtrail.core.checkpoint import parse_decimal
from sealtrail.core.cosignature import CosignatureVerifier, signature_timestamp
from sealtrail.core.note import Note, NoteSignature, parse_note
from sealtrail.errors import InvalidInputError, NoteError, SignatureError

MAX_ANSWER_BYTES = 64 * 1024


@dataclass(frozen=True)
class WitnessConfig:
    """One witness a log submits its checkpoints to."""

    name: str
    verifier: CosignatureVerifier
    url: str

    @property
    def vkey(self) -> str:
        return self.verifier.vkey()


@dataclass(frozen=True)
class WitnessingConfig:
    """The witnesses of a log and the quorum that makes one of its checkpoints witnessed."""

    witnesses: tuple[WitnessConfig, ...]
    quorum: int
    retry_max_s: float = 60.0
    """The backoff after failures doubles from 0.5 s up to this."""


def parse_witness_config(text: str, *, source: str) -> WitnessingConfig:
    """Read a witness configuration; InvalidInputError naming ``source``, the table and the field."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise InvalidInputError(f"{source}: not valid TOML: {e}") from e
    unknown = set(data) - {"quorum", "witness", "retry_max_s"}
    if unknown:
        raise InvalidInputError(f"{source}: unknown key {sorted(unknown)[0]!r}")
    tables = data.get("witness", [])
    if not isinstance(tables, list) or not tables:
        raise InvalidInputError(f"{source}: at least one [[witness]] table is needed")
    witnesses = tuple(_witness(t, f"{source}: witness[{n}].") for n, t in enumerate(tables))
    if len({w.name for w in witnesses}) != len(witnesses) or len({w.vkey for w in witnesses}) != len(witnesses):
        raise InvalidInputError(f"{source}: a witness name or vkey is listed twice")
    quorum = data.get("quorum", len(witnesses))
    if not isinstance(quorum, int) or isinstance(quorum, bool) or not 1 <= quorum <= len(witnesses):
        raise InvalidInputError(f"{source}: quorum must be an integer from 1 to {len(witnesses)}")
    retry = data.get("retry_max_s", 60.0)
    if not isinstance(retry, int | float) or isinstance(retry, bool) or not 0.5 <= retry <= 3600:
        raise InvalidInputError(f"{source}: retry_max_s must be a number of seconds from 0.5 to 3600")
    return WitnessingConfig(witnesses, quorum, float(retry))


def _witness(table: Any, where: str) -> WitnessConfig:
    if not isinstance(table, dict):
        raise InvalidInputError(f"{where[:-1]} must be a table")
    extra = set(table) - {"name", "vkey", "url"}
    if extra:
        raise InvalidInputError(f"{where}{sorted(extra)[0]}: unknown field")
    for field in ("name", "vkey", "url"):
        if not isinstance(table.get(field), str) or not table[field]:
            raise InvalidInputError(f"{where}{field}: a non-empty string is needed")
    try:
        verifier = CosignatureVerifier.from_vkey(table["vkey"])
    except NoteError as e:
        raise InvalidInputError(f"{where}vkey: not a cosignature vkey (type 0x04): {e}") from e
    url: str = table["url"].rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise InvalidInputError(f"{where}url: must start with http:// or https://")
    return WitnessConfig(table["name"], verifier, url)


# --- answers -----------------------------------------------------------------------------------


def read_cosignature(note: str, body: bytes, witness: CosignatureVerifier) -> NoteSignature:
    """The witness's verified cosignature from a 200 answer to ``note``; SignatureError otherwise."""
    if len(body) > MAX_ANSWER_BYTES:
        raise SignatureError("the witness's answer is too large")
    try:
        lines = body.decode("utf-8")
        parsed = parse_note(note + lines) if lines.startswith("— ") else None
    except (UnicodeDecodeError, NoteError) as e:
        raise SignatureError("the witness's answer is not signature lines") from e
    if parsed is None:
        raise SignatureError("the witness's answer is not signature lines")
    text = parsed.text.encode("utf-8")
    for sig in parsed.signatures[len(parse_note(note).signatures):]:
        if (sig.name, sig.key_id) != (witness.name, witness.key_id):
            continue
        if not witness.verify(text, sig.signature) or signature_timestamp(sig.signature) == 0:
            raise SignatureError(f"cosignature by {witness.name} does not verify")
        return sig
    raise SignatureError(f"the answer carries no cosignature by {witness.name}")


def read_size(body: bytes) -> int:
    """The witness's latest cosigned size from a 409 answer (``text/x.tlog.size``)."""
    try:
        text = body.decode("ascii")
        if not text.endswith("\n"):
            raise NoteError("no newline")
        return parse_decimal(text[:-1], "witness size")
    except (UnicodeDecodeError, NoteError) as e:
        raise InvalidInputError("the witness's 409 answer is not a size line") from e


def with_cosignatures(note: str, cosignatures: list[NoteSignature]) -> str:
    """``note`` with the given cosignature lines added after its own (each line once)."""
    parsed = parse_note(note)
    extra = [s for s in dict.fromkeys(cosignatures) if s not in parsed.signatures]
    return Note(parsed.text, (*parsed.signatures, *extra)).format()


def backoff_seconds(attempt: int, *, base: float = 0.5, cap: float = 60.0) -> float:
    """Delay before retry number ``attempt`` (0-based): doubling from ``base``, at most ``cap``."""
    return float(min(cap, base * 2 ** min(attempt, 16)))
