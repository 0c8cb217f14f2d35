"""Looking for an erased payload's bytes in raw files: its nonce and every slice of its ciphertext."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

SLICE = 24
"""Bytes of each ciphertext slice looked for: a fragment left anywhere is found."""

Sealed = tuple[bytes, bytes]
"""(nonce, ciphertext) of one payload."""


def fragments(sealed: Sealed) -> list[bytes]:
    """The nonce and the ciphertext cut into :data:`SLICE`-byte pieces (the last one ends at its end)."""
    nonce, ciphertext = sealed
    cuts = [ciphertext[i:i + SLICE] for i in range(0, max(1, len(ciphertext) - SLICE + 1), SLICE)]
    return [nonce, *cuts, ciphertext[-SLICE:]]


def read_all(paths: Iterable[Path]) -> bytes:
    """The bytes of every file given (files that do not exist are skipped), and of every file under
    a directory given."""
    out = []
    for path in paths:
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        out += [f.read_bytes() for f in files if f.exists()]
    return b"\0".join(out)


def traced(data: bytes, payloads: Iterable[Sealed]) -> int:
    """How many of ``payloads`` have a fragment (:func:`fragments`) somewhere in ``data``."""
    return sum(1 for sealed in payloads if any(f in data for f in fragments(sealed)))
