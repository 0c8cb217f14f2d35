"""Witness quorums: a checkpoint counts only with K valid cosignatures from distinct given witnesses.

A witness cosigns a checkpoint (c2sp.org/tlog-cosignature, type 0x04) only when it is consistent
with every checkpoint of that log the witness cosigned before (c2sp.org/tlog-witness). A quorum of
K independent witnesses therefore means that showing a different history to someone else (a
split view) or rolling the log back needs K witnesses to misbehave (or their keys).

Rules: signature lines from keys that are not among the given witnesses are ignored; a line from a
given witness key that does not verify rejects the note (as signed-note verification does); each
witness counts once, however many lines it has; a cosignature must carry a non-zero timestamp.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sealtrail.core.checkpoint import parse_checkpoint
from sealtrail.core.cosignature import CosignatureVerifier, signature_timestamp
from sealtrail.core.note import Note, parse_note
from sealtrail.errors import InvalidInputError, NoteError, SignatureError, VerificationError


class QuorumError(VerificationError):
    """A checkpoint carries fewer valid cosignatures from the given witnesses than the quorum."""


@dataclass(frozen=True)
class Witnessed:
    """The witnesses (names) whose valid cosignatures a checkpoint carries, with their times."""

    names: tuple[str, ...]
    timestamps: tuple[int, ...]


@dataclass(frozen=True)
class WitnessPolicy:
    """The witnesses a verifier trusts and how many of them must cosign a checkpoint."""

    witnesses: tuple[CosignatureVerifier, ...]
    quorum: int

    def __post_init__(self) -> None:
        idents = [(w.name, w.key_id) for w in self.witnesses]
        if len(set(idents)) != len(idents) or len({w.public_key for w in self.witnesses}) != len(idents):
            raise InvalidInputError("a witness key is given twice")
        if not 1 <= self.quorum <= len(self.witnesses):
            raise InvalidInputError(
                f"quorum {self.quorum} must be between 1 and the number of witnesses ({len(self.witnesses)})")

    @classmethod
    def from_vkeys(cls, vkeys: Iterable[str], quorum: int | None = None) -> WitnessPolicy:
        """Witnesses from type 0x04 vkeys; the quorum defaults to all of them."""
        witnesses = []
        for n, vkey in enumerate(vkeys):
            try:
                witnesses.append(CosignatureVerifier.from_vkey(vkey))
            except NoteError as e:
                raise InvalidInputError(f"witness key {n + 1} is not a cosignature vkey (type 0x04): {e}") from e
        return cls(tuple(witnesses), len(witnesses) if quorum is None else quorum)

    def cosigners(self, note: str | bytes | Note) -> Witnessed:
        """The given witnesses that validly cosigned ``note``; SignatureError if a given witness's line is bad."""
        parsed = note if isinstance(note, Note) else parse_note(note)
        known = {(w.name, w.key_id): w for w in self.witnesses}
        text = parsed.text.encode("utf-8")
        found: dict[str, int] = {}
        for sig in parsed.signatures:
            witness = known.get((sig.name, sig.key_id))
            if witness is None:
                continue
            if not witness.verify(text, sig.signature) or signature_timestamp(sig.signature) == 0:
                raise SignatureError(f"cosignature by witness {sig.name} does not verify")
            found.setdefault(sig.name, signature_timestamp(sig.signature))
        return Witnessed(tuple(found), tuple(found.values()))

    def check(self, note: str | bytes | Note) -> Witnessed:
        """Return the witnesses of ``note``, or raise :class:`QuorumError` naming the checkpoint's size."""
        parsed = note if isinstance(note, Note) else parse_note(note)
        got = self.cosigners(parsed)
        if len(got.names) < self.quorum:
            size = parse_checkpoint(parsed.text).size
            who = f" (only {', '.join(got.names)})" if got.names else ""
            raise QuorumError(f"checkpoint at tree size {size} carries {len(got.names)} of the {self.quorum} "
                              f"witness cosignatures required{who}")
        return got
