"""Offline inclusion proofs (c2sp.org/tlog-proof), stored as ``.tlog-proof`` files.

::

    c2sp.org/tlog-proof@v1
    [extra <base64 opaque data>]
    index <leaf index, ASCII decimal, no leading zeroes>
    <base64 proof hash, leaf's sibling first>   (zero or more lines)
    <empty line>
    <the signed checkpoint note, verbatim>

The extra data is not authenticated and MUST NOT be trusted. Parsing is strict: anything
malformed raises :class:`NoteError`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sealtrail.core.checkpoint import Checkpoint, parse_checkpoint, parse_decimal
from sealtrail.core.merkle import HASH_SIZE, leaf_hash, verify_inclusion
from sealtrail.core.note import Verifier, b64decode, b64encode, open_note, parse_note
from sealtrail.errors import NoteError, VerificationError

HEADER = "c2sp.org/tlog-proof@v1"


@dataclass(frozen=True)
class TlogProof:
    """A parsed proof file: leaf index, inclusion proof, signed checkpoint note, extra data."""

    index: int
    proof: tuple[bytes, ...]
    note: str
    extra: bytes | None = None

    def format(self) -> str:
        """Return the proof file text."""
        lines = [HEADER]
        if self.extra is not None:
            if not self.extra:
                raise NoteError("extra data must be non-empty when present")
            lines.append(f"extra {b64encode(self.extra)}")
        lines.append(f"index {self.index}")
        if any(len(h) != HASH_SIZE for h in self.proof):
            raise NoteError("proof hashes must be 32 bytes")
        lines.extend(b64encode(h) for h in self.proof)
        parse_checkpoint(parse_note(self.note).text)
        return "\n".join(lines) + "\n\n" + self.note

    def checkpoint(self) -> Checkpoint:
        """Return the checkpoint in the note (its signatures are NOT checked here)."""
        return parse_checkpoint(parse_note(self.note).text)


def format_proof(index: int, proof: Sequence[bytes], note: str, *, extra: bytes | None = None) -> str:
    """Return the proof file text for leaf ``index`` with ``proof`` under signed checkpoint ``note``."""
    return TlogProof(index, tuple(proof), note, extra).format()


def parse_proof(data: str | bytes) -> TlogProof:
    """Parse a proof file; raises :class:`NoteError` if anything is malformed."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise NoteError("proof file is not valid UTF-8") from e
    head, sep, note = data.partition("\n\n")
    if not sep:
        raise NoteError("proof file has no empty line before its checkpoint")
    lines = head.split("\n")
    if lines[0] != HEADER:
        raise NoteError(f"proof file must start with {HEADER}")
    pos, extra = 1, None
    if len(lines) > pos and lines[pos].startswith("extra "):
        extra = b64decode(lines[pos][len("extra ") :], "extra data")
        if not extra:
            raise NoteError("extra data must be non-empty when present")
        pos += 1
    if len(lines) <= pos or not lines[pos].startswith("index "):
        raise NoteError("proof file needs an index line")
    index = parse_decimal(lines[pos][len("index ") :], "index")
    proof = tuple(b64decode(line, "proof hash") for line in lines[pos + 1 :])
    if any(len(h) != HASH_SIZE for h in proof):
        raise NoteError("proof hashes must be 32 bytes")
    parse_checkpoint(parse_note(note).text)
    return TlogProof(index, proof, note, extra)


def verify_proof(
    data: str | bytes | TlogProof, entry: bytes, verifiers: Iterable[Verifier], *, origin: str | None = None
) -> Checkpoint:
    """Check that ``entry`` is in the log under a checkpoint signed by one of ``verifiers``.

    Returns the checkpoint. Raises :class:`NoteError` (malformed), :class:`SignatureError`
    (no known key signed it, or a known key's signature fails), :class:`VerificationError` (wrong
    origin) or :class:`InvalidProofError` (the entry is not at that index under that root).
    This checks signatures only; key validity windows are the business of
    :mod:`sealtrail.core.verify`.
    """
    proof = data if isinstance(data, TlogProof) else parse_proof(data)
    opened = open_note(proof.note, verifiers)
    checkpoint = parse_checkpoint(opened.text)
    if origin is not None and checkpoint.origin != origin:
        raise VerificationError(f"checkpoint is for {checkpoint.origin!r}, not {origin!r}")
    verify_inclusion(leaf_hash(entry), proof.index, checkpoint.size, proof.proof, checkpoint.root)
    return checkpoint
