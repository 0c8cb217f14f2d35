"""A log for witness tests: signed checkpoints, consistency proofs, add-checkpoint bodies, forks."""

from __future__ import annotations

from sealtrail.core import merkle
from sealtrail.core.checkpoint import Checkpoint
from sealtrail.core.cosignature import CosignatureVerifier
from sealtrail.core.note import Ed25519Signer, b64decode, parse_note, sign_note
from sealtrail.core.witness import format_add_checkpoint

ORIGIN = "example.org/witnessed-log"


class WitnessedLog:
    """``size`` leaves signed by one Ed25519 key; :meth:`fork` shares a prefix and the key."""

    def __init__(self, size: int, *, origin: str = ORIGIN, key: Ed25519Signer | None = None,
                 tag: str = "main", prefix: list[bytes] | None = None) -> None:
        self.origin = origin
        self.key = key or Ed25519Signer.generate(origin)
        start = list(prefix or [])
        self.leaves = start + [merkle.leaf_hash(f"{tag}:{i}".encode()) for i in range(len(start), size)]
        self.store = merkle.MemoryNodeStore()
        self.store.add_runs(merkle.CompactRange().extend(self.leaves))

    @property
    def vkey(self) -> str:
        return self.key.verifier().vkey()

    def fork(self, at: int, size: int, *, tag: str = "fork") -> WitnessedLog:
        """Another history that agrees with this one on the first ``at`` leaves only."""
        return WitnessedLog(size, origin=self.origin, key=self.key, tag=tag, prefix=self.leaves[:at])

    def root(self, size: int) -> bytes:
        return merkle.root_at(self.store, size) if size else merkle.empty_root()

    def checkpoint(self, size: int) -> Checkpoint:
        return Checkpoint(self.origin, size, self.root(size))

    def signed(self, size: int, *, key: Ed25519Signer | None = None) -> str:
        return sign_note(self.checkpoint(size).body(), [key or self.key])

    def proof(self, old: int, size: int) -> list[bytes]:
        return merkle.consistency_proof(self.store, old, size) if 0 < old < size else []

    def body(self, old: int, size: int, *, key: Ed25519Signer | None = None) -> bytes:
        """An add-checkpoint body from ``old`` to ``size`` with a correct proof."""
        return format_add_checkpoint(old, self.proof(old, size), self.signed(size, key=key))


def cosigned_size_root(signed_note: str, lines: str, witness: CosignatureVerifier) -> tuple[int, bytes]:
    """Check that ``lines`` hold a valid cosignature by ``witness`` of ``signed_note``; its (size, root)."""
    note = parse_note(signed_note + lines)
    sigs = [s for s in note.signatures if (s.name, s.key_id) == (witness.name, witness.key_id)]
    assert sigs, "no cosignature by the witness"
    assert all(witness.verify(note.text.encode(), s.signature) for s in sigs)
    _, size, root = note.text.split("\n")[:3]
    return int(size), b64decode(root, "root")
