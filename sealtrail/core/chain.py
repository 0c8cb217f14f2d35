"""The per-log hash chain (DESIGN §5): ``chain[i] = BLAKE3(chain[i-1] || leaf[i])``.

``chain[-1] = BLAKE3(origin)``. Each entry stores its chain value, so a reader scanning entries in
order finds the first altered one without building the Merkle tree.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from blake3 import blake3

CHAIN_SIZE = 32


def chain_seed(origin: str) -> bytes:
    """Return ``chain[-1]``: BLAKE3 of the log's origin line in UTF-8."""
    return blake3(origin.encode("utf-8")).digest()


def chain_next(prev: bytes, leaf: bytes) -> bytes:
    """Return the chain value after ``prev`` for the entry with leaf hash ``leaf``."""
    return blake3(prev + leaf).digest()


def chain_fold(prev: bytes, leaves: Iterable[bytes]) -> list[bytes]:
    """Return the chain value of each leaf in turn, starting after ``prev``."""
    b3 = blake3
    out: list[bytes] = []
    append = out.append
    for leaf in leaves:
        prev = b3(prev + leaf).digest()
        append(prev)
    return out


def chain_head(prev: bytes, leaves: Iterable[bytes]) -> bytes:
    """Return the chain value after the last leaf (``prev`` when there are none)."""
    b3 = blake3
    for leaf in leaves:
        prev = b3(prev + leaf).digest()
    return prev


def first_chain_mismatch(prev: bytes, leaves: Sequence[bytes], stored: Sequence[bytes]) -> int | None:
    """Return the position of the first stored chain value that differs from its recomputation.

    Positions are relative to the start of ``leaves``. A missing stored value (``stored`` shorter
    than ``leaves``) counts as a mismatch at the first position without one; extra stored values
    are ignored. Returns ``None`` when all match.
    """
    b3 = blake3
    for i, (leaf, want) in enumerate(zip(leaves, stored, strict=False)):
        prev = b3(prev + leaf).digest()
        if prev != want:
            return i
    if len(stored) < len(leaves):
        return len(stored)
    return None
