"""RFC 6962 / RFC 9162 Merkle trees over SHA-256: hashing, compact ranges, proofs.

Hashes: ``leaf = SHA-256(0x00 || entry)``, ``node = SHA-256(0x01 || left || right)``, the empty
tree's root is ``SHA-256("")``. The tree of size n splits at the largest power of two below n.

Storage model. Every node the log ever needs for a proof is the root of a *perfect* subtree,
named by ``NodeID(level, index)``: it covers leaves ``[index * 2**level, (index + 1) * 2**level)``.
Such a node never changes once its last leaf is appended. Nodes that cover a partial subtree
(the tree's right border) are ephemeral: proofs rebuild them from perfect ones. A store that
keeps every perfect node holds ``2n - popcount(n)`` hashes for n leaves, i.e. about two 32-byte
hashes (64 bytes) per entry, and any inclusion or consistency proof at any tree size then costs
one batched read of O(log n) nodes (never more than about ``2 * log2(n)``).

The ledger keeps only a :class:`CompactRange` in memory: the ``popcount(n)`` perfect roots that
cover ``[0, n)``, O(log n) hashes. Appending reports the new perfect nodes so a store can persist
them in the same transaction as the entries.

Database stores keep fewer: only the nodes on every :data:`STRIDE`-th level (level 0 being the
leaves, which the entries hold anyway), about ``n / (2**STRIDE - 1)`` node rows instead of ``n``.
A node between two stored levels is rebuilt from the ``2**d`` stored nodes ``d`` levels below it
(:func:`base_nodes`, :func:`rebuild`), so a proof reads at most ``2**STRIDE - 1`` stored nodes
per band of ``STRIDE`` levels and hashes fewer than that.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from sealtrail.errors import InvalidInputError, InvalidProofError

HASH_SIZE = 32

_sha256 = hashlib.sha256
_LEAF = b"\x00"
_NODE = b"\x01"
_EMPTY_ROOT = _sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    """Return ``SHA-256(0x00 || data)``."""
    return _sha256(_LEAF + data).digest()


def leaf_hashes(entries: Iterable[bytes]) -> list[bytes]:
    """Return the leaf hash of each entry, in order (the batch form of :func:`leaf_hash`)."""
    sha = _sha256
    return [sha(_LEAF + e).digest() for e in entries]


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return ``SHA-256(0x01 || left || right)``."""
    return _sha256(_NODE + left + right).digest()


def empty_root() -> bytes:
    """Return the root hash of the empty tree, ``SHA-256("")``."""
    return _EMPTY_ROOT


def _pair_up(hashes: Sequence[bytes]) -> list[bytes]:
    """Hash ``hashes[0:2], hashes[2:4], ...``; a trailing odd hash is dropped."""
    sha = _sha256
    it = iter(hashes)
    return [sha(_NODE + a + b).digest() for a, b in zip(it, it, strict=False)]


def root_of(leaves: Sequence[bytes]) -> bytes:
    """Return the RFC 6962 root of a list of leaf hashes.

    Level by level: adjacent pairs are hashed and a trailing odd node moves up unchanged, which
    gives the same tree as the RFC's split at the largest power of two.
    """
    if not leaves:
        return _EMPTY_ROOT
    level = list(leaves)
    while len(level) > 1:
        odd = level[-1] if len(level) % 2 else None
        level = _pair_up(level)
        if odd is not None:
            level.append(odd)
    return level[0]


# --- compact ranges ----------------------------------------------------------------------------


@dataclass(frozen=True, order=True, slots=True)
class NodeID:
    """A perfect subtree: ``level`` 0 is a leaf; it covers ``2**level`` leaves from ``index << level``."""

    level: int
    index: int


@dataclass(frozen=True)
class NodeRun:
    """Consecutive new perfect nodes on one level: ``hashes[i]`` is node ``(level, start + i)``."""

    level: int
    start: int
    hashes: tuple[bytes, ...]


class CompactRange:
    """The perfect subtree roots covering leaves ``[0, size)``: O(log n) state for appending.

    ``hashes`` lists them left to right (largest subtree first); there is one per set bit of
    ``size``. The object is mutable; :meth:`to_bytes` / :meth:`from_bytes` persist it.
    """

    __slots__ = ("_by_level", "_size")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        if size < 0 or len(hashes) != size.bit_count():
            raise InvalidInputError(f"a compact range of size {size} needs {max(size, 0).bit_count()} hashes")
        if any(len(h) != HASH_SIZE for h in hashes):
            raise InvalidInputError("compact range hashes must be 32 bytes")
        self._size = size
        self._by_level: list[bytes | None] = [None] * size.bit_length()
        it = iter(hashes)
        for level in reversed(range(size.bit_length())):
            if size >> level & 1:
                self._by_level[level] = next(it)

    @property
    def size(self) -> int:
        """Number of leaves covered."""
        return self._size

    @property
    def hashes(self) -> list[bytes]:
        """The perfect subtree roots, left to right."""
        return [h for h in reversed(self._by_level) if h is not None]

    def copy(self) -> CompactRange:
        """Return an independent copy."""
        return CompactRange(self._size, self.hashes)

    def root(self) -> bytes:
        """Return the RFC 6962 root of the leaves covered so far."""
        acc: bytes | None = None
        for h in self._by_level:
            if h is not None:
                acc = h if acc is None else _sha256(_NODE + h + acc).digest()
        return _EMPTY_ROOT if acc is None else acc

    def append(self, leaf: bytes) -> list[tuple[NodeID, bytes]]:
        """Append one leaf hash; return the new perfect nodes (the leaf itself first)."""
        return [(NodeID(run.level, run.start), run.hashes[0]) for run in self.extend([leaf])]

    def extend(self, leaves: Sequence[bytes]) -> list[NodeRun]:
        """Append leaf hashes; return the new perfect nodes as one run per level, lowest first.

        A store MUST persist every returned run (in the same transaction as the leaves) for
        proofs to be served later; runs never overlap what earlier calls returned.
        """
        if any(len(h) != HASH_SIZE for h in leaves):
            raise InvalidInputError("leaf hashes must be 32 bytes")
        runs: list[NodeRun] = []
        old, cur, level = self._size, list(leaves), 0
        self._size = old + len(cur)
        while cur:
            runs.append(NodeRun(level, old >> level, tuple(cur)))
            if level == len(self._by_level):
                self._by_level.append(None)
            lone = self._by_level[level]
            if lone is not None:
                cur.insert(0, lone)
            self._by_level[level] = cur[-1] if len(cur) % 2 else None
            cur = _pair_up(cur)
            level += 1
        return runs

    def to_bytes(self) -> bytes:
        """Serialise: 8-byte big-endian size, then the hashes left to right."""
        return self._size.to_bytes(8, "big") + b"".join(self.hashes)

    @classmethod
    def from_bytes(cls, data: bytes) -> CompactRange:
        """Parse :meth:`to_bytes` output; raises :class:`InvalidInputError` if malformed."""
        if len(data) < 8 or (len(data) - 8) % HASH_SIZE:
            raise InvalidInputError("malformed compact range")
        size = int.from_bytes(data[:8], "big")
        body = data[8:]
        return cls(size, [body[i : i + HASH_SIZE] for i in range(0, len(body), HASH_SIZE)])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CompactRange):
            return NotImplemented
        return self._size == other._size and self.hashes == other.hashes

    def __repr__(self) -> str:
        return f"CompactRange(size={self._size}, root={self.root().hex()[:16]}...)"


def range_nodes(begin: int, end: int) -> list[NodeID]:
    """Return the perfect nodes covering leaves ``[begin, end)``, left to right (fewest nodes)."""
    left: list[NodeID] = []
    right: list[NodeID] = []
    level = 0
    while begin < end:
        if begin & 1:
            left.append(NodeID(level, begin))
            begin += 1
        if end & 1:
            end -= 1
            right.append(NodeID(level, end))
        begin, end, level = begin >> 1, end >> 1, level + 1
    return left + right[::-1]


# --- nodes stored on every STRIDE-th level ---------------------------------------------------

STRIDE = 4
"""Database stores keep perfect nodes on the levels that are multiples of ``STRIDE`` only."""


def stored_level(level: int) -> bool:
    """Whether a store keeps the nodes of ``level`` (level 0: the leaves, kept with the entries)."""
    return level % STRIDE == 0


def stored_nodes(runs: Iterable[NodeRun]) -> Iterator[tuple[int, int, bytes]]:
    """``(level, index, hash)`` of the new nodes a store keeps besides the leaves (level 0)."""
    for run in runs:
        if run.level > 0 and stored_level(run.level):
            for i, h in enumerate(run.hashes):
                yield run.level, run.start + i, h


def _base(node: NodeID) -> tuple[int, int, int]:
    """The stored level under ``node``, and the first and end index of its nodes there."""
    drop = node.level % STRIDE
    return node.level - drop, node.index << drop, (node.index + 1) << drop


def base_nodes(ids: Iterable[NodeID]) -> list[NodeID]:
    """The stored nodes :func:`rebuild` needs to give the hashes of ``ids``, sorted, each once."""
    wanted: set[NodeID] = set()
    for node in ids:
        level, begin, end = _base(node)
        wanted.update(NodeID(level, i) for i in range(begin, end))
    return sorted(wanted)


def rebuild(ids: Iterable[NodeID], stored: Mapping[NodeID, bytes]) -> dict[NodeID, bytes]:
    """The hashes of those of ``ids`` whose base nodes are all in ``stored`` (by node id)."""
    out: dict[NodeID, bytes] = {}
    for node in ids:
        level, begin, end = _base(node)
        hashes = [stored.get(NodeID(level, i)) for i in range(begin, end)]
        if any(h is None for h in hashes):
            continue
        layer = [h for h in hashes if h is not None]  # all of them; the filter narrows the type
        while len(layer) > 1:
            layer = _pair_up(layer)
        out[node] = layer[0]
    return out


# --- proofs from stored nodes ------------------------------------------------------------------


class NodeReader(Protocol):
    """Port to the stored perfect nodes of one log's tree.

    ``get_nodes`` MUST return the hash of every requested node, in request order, and MUST raise
    a :class:`~sealtrail.errors.SealtrailError` rather than return fewer. Callers only ask for
    nodes inside the tree they were told exists, which never change once stored, so the result
    MAY come from any snapshot at least that large.
    """

    def get_nodes(self, ids: Sequence[NodeID]) -> Sequence[bytes]: ...


@dataclass(frozen=True)
class ProofPlan:
    """Which nodes a proof needs and how to rebuild its one ephemeral node.

    ``ids[begin:end]`` are folded right to left into one hash (the right border of the tree,
    an ephemeral node when it holds two or more); every other ID contributes its hash as is.
    """

    ids: tuple[NodeID, ...]
    begin: int
    end: int

    def assemble(self, hashes: Sequence[bytes]) -> list[bytes]:
        """Turn the hashes of ``ids`` (same order) into the proof."""
        if len(hashes) != len(self.ids):
            raise InvalidInputError(f"expected {len(self.ids)} node hashes, got {len(hashes)}")
        if self.end - self.begin <= 1:
            return list(hashes)
        border = list(hashes[self.begin : self.end])
        acc = border[-1]
        for h in reversed(border[:-1]):
            acc = node_hash(h, acc)
        return [*hashes[: self.begin], acc, *hashes[self.end :]]


def _plan(level: int, index: int, size: int, *, include_seed: bool) -> ProofPlan:
    """Plan the proof that perfect node ``(level, index)`` is in the tree of ``size`` leaves."""
    # The path up from the node and the path to the tree's right border part at `fork`;
    # below it every sibling is perfect, beside it sits the (maybe ephemeral) border node.
    inner = (index ^ (size >> level)).bit_length() - 1
    fork_level, fork_index = level + inner, index >> inner
    begin = fork_index << fork_level
    end = begin + (1 << fork_level)
    ids: list[NodeID] = [NodeID(level, index)] if include_seed else []
    for lvl in range(level, fork_level):
        ids.append(NodeID(lvl, (index >> (lvl - level)) ^ 1))
    border_begin = len(ids)
    ids.extend(range_nodes(end, size))
    border_end = len(ids)
    ids.extend(reversed(range_nodes(0, begin)))
    return ProofPlan(tuple(ids), border_begin, border_end)


def plan_inclusion(index: int, size: int) -> ProofPlan:
    """Plan the inclusion proof of leaf ``index`` in the tree of ``size`` leaves."""
    if not 0 <= index < size:
        raise InvalidInputError(f"leaf index {index} is outside a tree of size {size}")
    return _plan(0, index, size, include_seed=False)


def plan_consistency(size1: int, size2: int) -> ProofPlan:
    """Plan the consistency proof from ``size1`` to ``size2`` (RFC 9162 needs ``0 < size1``)."""
    if not 0 < size1 <= size2:
        raise InvalidInputError(f"no consistency proof from size {size1} to size {size2}")
    if size1 == size2:
        return ProofPlan((), 0, 0)
    # The last perfect subtree of the old tree; the verifier knows it already when it is the
    # whole old tree (size1 a power of two), so it is left out then.
    level = (size1 & -size1).bit_length() - 1
    index = (size1 - 1) >> level
    return _plan(level, index, size2, include_seed=index != 0)


def inclusion_proof(reader: NodeReader, index: int, size: int) -> list[bytes]:
    """Return the RFC 9162 inclusion proof of leaf ``index`` at ``size``, with one node read."""
    plan = plan_inclusion(index, size)
    return plan.assemble(reader.get_nodes(plan.ids) if plan.ids else [])


def consistency_proof(reader: NodeReader, size1: int, size2: int) -> list[bytes]:
    """Return the RFC 9162 consistency proof from ``size1`` to ``size2``, with one node read."""
    plan = plan_consistency(size1, size2)
    return plan.assemble(reader.get_nodes(plan.ids) if plan.ids else [])


def root_at(reader: NodeReader, size: int) -> bytes:
    """Return the root of the first ``size`` leaves from stored nodes, with one node read."""
    ids = range_nodes(0, size)
    if not ids:
        return _EMPTY_ROOT
    return ProofPlan(tuple(ids), 0, len(ids)).assemble(reader.get_nodes(ids))[0]


class MemoryNodeStore:
    """In-memory :class:`NodeReader`: one packed ``bytearray`` of 32-byte hashes per level."""

    def __init__(self) -> None:
        self._levels: list[bytearray] = []

    def add_runs(self, runs: Iterable[NodeRun]) -> None:
        """Store runs from :meth:`CompactRange.extend`; each MUST start where its level ends."""
        for run in runs:
            while len(self._levels) <= run.level:
                self._levels.append(bytearray())
            packed = self._levels[run.level]
            if len(packed) != run.start * HASH_SIZE:
                raise InvalidInputError(f"run at level {run.level} starts at {run.start}, store has a gap")
            packed += b"".join(run.hashes)

    def get_nodes(self, ids: Sequence[NodeID]) -> list[bytes]:
        """Return the stored hashes of ``ids``; raises :class:`InvalidInputError` if one is missing."""
        out = []
        levels = self._levels
        for node in ids:
            level, index = node.level, node.index
            packed = levels[level] if 0 <= level < len(levels) else b""
            h = bytes(packed[index * HASH_SIZE : (index + 1) * HASH_SIZE]) if index >= 0 else b""
            if len(h) != HASH_SIZE:
                raise InvalidInputError(f"node ({level}, {index}) is not stored")
            out.append(h)
        return out

    @property
    def stored_bytes(self) -> int:
        """Bytes of hashes held."""
        return sum(len(p) for p in self._levels)


# --- verification (RFC 9162 §2.1.3.2 and §2.1.4.2) ---------------------------------------------


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> None:
    """Check that ``leaf`` is leaf ``index`` of the tree of ``size`` with ``root``.

    Raises :class:`InvalidProofError` when it is not (or the inputs are malformed).
    """
    if not 0 <= index < size:
        raise InvalidProofError(f"leaf index {index} is outside a tree of size {size}")
    if len(leaf) != HASH_SIZE or any(len(p) != HASH_SIZE for p in proof):
        raise InvalidProofError("leaf and proof hashes must be 32 bytes")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise InvalidProofError("inclusion proof is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise InvalidProofError("inclusion proof is too short")
    if r != root:
        raise InvalidProofError("inclusion proof does not lead to the root")


def verify_consistency(size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes) -> None:
    """Check that the tree of ``size1`` with ``root1`` is a prefix of ``size2`` with ``root2``.

    RFC 9162 defines proofs for ``0 < size1 <= size2``; an equal size needs an empty proof and
    equal roots. Raises :class:`InvalidProofError` otherwise.
    """
    if not 0 < size1 <= size2:
        raise InvalidProofError(f"no consistency proof exists from size {size1} to size {size2}")
    if size1 == size2:
        if proof:
            raise InvalidProofError("consistency proof between equal sizes must be empty")
        if root1 != root2:
            raise InvalidProofError("roots differ at the same size")
        return
    if not proof or any(len(p) != HASH_SIZE for p in proof):
        raise InvalidProofError("consistency proof is empty or holds hashes that are not 32 bytes")
    path = [root1, *proof] if size1 & (size1 - 1) == 0 else list(proof)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise InvalidProofError("consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise InvalidProofError("consistency proof is too short")
    if fr != root1 or sr != root2:
        raise InvalidProofError("consistency proof does not lead to both roots")


def inclusion_ok(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> bool:
    """Boolean form of :func:`verify_inclusion`."""
    try:
        verify_inclusion(leaf, index, size, proof, root)
    except InvalidProofError:
        return False
    return True


def consistency_ok(size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes) -> bool:
    """Boolean form of :func:`verify_consistency`."""
    try:
        verify_consistency(size1, size2, proof, root1, root2)
    except InvalidProofError:
        return False
    return True
