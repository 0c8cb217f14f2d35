"""Compact ranges and proof generation agree with a naive RFC 6962 §2.1 reference; tampering fails."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sealtrail.core import merkle
from sealtrail.errors import InvalidInputError, InvalidProofError

MAX_LEAVES = 2048
PROFILE = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

LEAVES = [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(MAX_LEAVES)]


class Reference:
    """MTH, PATH and PROOF exactly as RFC 6962 §2.1 writes them, memoised over leaf ranges."""

    def __init__(self, leaves: Sequence[bytes]) -> None:
        self.leaves = leaves
        self._memo: dict[tuple[int, int], bytes] = {}

    @staticmethod
    def split(n: int) -> int:
        k = 1
        while k * 2 < n:
            k *= 2
        return k

    def mth(self, lo: int, hi: int) -> bytes:
        if hi - lo == 0:
            return hashlib.sha256(b"").digest()
        if hi - lo == 1:
            return self.leaves[lo]
        if (lo, hi) not in self._memo:
            k = self.split(hi - lo)
            self._memo[lo, hi] = merkle.node_hash(self.mth(lo, lo + k), self.mth(lo + k, hi))
        return self._memo[lo, hi]

    def path(self, m: int, lo: int, hi: int) -> list[bytes]:
        if hi - lo <= 1:
            return []
        k = self.split(hi - lo)
        if m < k:
            return [*self.path(m, lo, lo + k), self.mth(lo + k, hi)]
        return [*self.path(m - k, lo + k, hi), self.mth(lo, lo + k)]

    def subproof(self, m: int, lo: int, hi: int, complete: bool) -> list[bytes]:
        n = hi - lo
        if m == n:
            return [] if complete else [self.mth(lo, hi)]
        k = self.split(n)
        if m <= k:
            return [*self.subproof(m, lo, lo + k, complete), self.mth(lo + k, hi)]
        return [*self.subproof(m - k, lo + k, hi, False), self.mth(lo, lo + k)]


REF = Reference(LEAVES)


class CountingReader:
    """Wraps a store and counts batched reads."""

    def __init__(self, inner: merkle.MemoryNodeStore) -> None:
        self.inner = inner
        self.calls = 0
        self.nodes = 0

    def get_nodes(self, ids: Sequence[merkle.NodeID]) -> Sequence[bytes]:
        self.calls += 1
        self.nodes += len(ids)
        return self.inner.get_nodes(ids)


def _build_store() -> merkle.MemoryNodeStore:
    store = merkle.MemoryNodeStore()
    compact = merkle.CompactRange()
    pos, step = 0, 1
    while pos < MAX_LEAVES:  # uneven batches, so runs start at every alignment
        store.add_runs(compact.extend(LEAVES[pos : pos + step]))
        pos += step
        step = step % 37 + 3
    return store


STORE = _build_store()


def _flip(proof: list[bytes], which: int, bit: int) -> list[bytes]:
    item = bytearray(proof[which])
    item[bit // 8] ^= 1 << (bit % 8)
    return [*proof[:which], bytes(item), *proof[which + 1 :]]


@PROFILE
@given(chunks=st.lists(st.integers(1, 300), min_size=1, max_size=30))
@example(chunks=[MAX_LEAVES])
def test_compact_range_matches_reference(chunks: list[int]) -> None:
    """Appending in any batch sizes gives the reference root at every size, and survives bytes."""
    compact = merkle.CompactRange()
    stored = merkle.MemoryNodeStore()
    for chunk in chunks:
        start = compact.size
        batch = LEAVES[start : min(start + chunk, MAX_LEAVES)]
        if not batch:
            break
        runs = compact.extend(batch)
        stored.add_runs(runs)
        assert compact.root() == REF.mth(0, compact.size)
        assert len(compact.hashes) == compact.size.bit_count()
        assert merkle.CompactRange.from_bytes(compact.to_bytes()) == compact
        assert merkle.root_at(stored, compact.size) == compact.root()
    assert stored.stored_bytes == 32 * (2 * compact.size - compact.size.bit_count())


@PROFILE
@given(size=st.integers(1, 300))
def test_single_appends_report_every_perfect_node(size: int) -> None:
    """append() reports the leaf first and then each perfect node it completes, with correct hashes."""
    compact = merkle.CompactRange()
    for i in range(size):
        nodes = compact.append(LEAVES[i])
        assert nodes[0] == (merkle.NodeID(0, i), LEAVES[i])
        for node_id, value in nodes:
            lo = node_id.index << node_id.level
            assert value == REF.mth(lo, lo + (1 << node_id.level))
        assert len(nodes) == 1 + ((i + 1) & -(i + 1)).bit_length() - 1
    assert compact.root() == REF.mth(0, size)


@PROFILE
@given(data=st.data(), size=st.integers(1, MAX_LEAVES))
@example(data=None, size=MAX_LEAVES)
def test_inclusion_proof_matches_reference(data: st.DataObject | None, size: int) -> None:
    """Inclusion proofs from stored nodes equal RFC 6962 PATH at any size, in one O(log n) read."""
    index = data.draw(st.integers(0, size - 1)) if data is not None else size - 1
    reader = CountingReader(STORE)
    proof = merkle.inclusion_proof(reader, index, size)
    assert proof == REF.path(index, 0, size)
    assert reader.calls == (1 if size > 1 else 0)
    assert reader.nodes <= 2 * math.ceil(math.log2(size)) + 1
    merkle.verify_inclusion(LEAVES[index], index, size, proof, REF.mth(0, size))


@PROFILE
@given(data=st.data(), size2=st.integers(1, MAX_LEAVES))
@example(data=None, size2=MAX_LEAVES)
def test_consistency_proof_matches_reference(data: st.DataObject | None, size2: int) -> None:
    """Consistency proofs from stored nodes equal RFC 6962 PROOF at any sizes, in one O(log n) read."""
    size1 = data.draw(st.integers(1, size2)) if data is not None else size2 - 1
    reader = CountingReader(STORE)
    proof = merkle.consistency_proof(reader, size1, size2)
    assert proof == REF.subproof(size1, 0, size2, True)
    assert reader.calls <= 1
    assert reader.nodes <= 2 * math.ceil(math.log2(size2)) + 2
    merkle.verify_consistency(size1, size2, proof, REF.mth(0, size1), REF.mth(0, size2))


def _inclusion_rejected(index: int, size: int, proof: list[bytes]) -> None:
    root = REF.mth(0, size)
    with pytest.raises(InvalidProofError):
        merkle.verify_inclusion(LEAVES[index], index, size, proof, root)


@PROFILE
@given(data=st.data(), size=st.integers(1, MAX_LEAVES))
def test_tampered_inclusion_proofs_fail(data: st.DataObject, size: int) -> None:
    """A flipped bit, a dropped or added node, a wrong index or a wrong size never verifies."""
    index = data.draw(st.integers(0, size - 1))
    proof = merkle.inclusion_proof(STORE, index, size)
    if proof:
        which = data.draw(st.integers(0, len(proof) - 1))
        _inclusion_rejected(index, size, _flip(proof, which, data.draw(st.integers(0, 255))))
        _inclusion_rejected(index, size, [*proof[:which], *proof[which + 1 :]])
    where = data.draw(st.integers(0, len(proof)))
    extra = data.draw(st.sampled_from([LEAVES[0], REF.mth(0, size), bytes(32)]))
    _inclusion_rejected(index, size, [*proof[:where], extra, *proof[where:]])
    if size > 1:
        other = data.draw(st.integers(0, size - 1).filter(lambda i: i != index))
        with pytest.raises(InvalidProofError):
            merkle.verify_inclusion(LEAVES[index], other, size, proof, REF.mth(0, size))
    wrong_size = data.draw(st.integers(index + 1, MAX_LEAVES).filter(lambda s: s != size))
    with pytest.raises(InvalidProofError):
        merkle.verify_inclusion(LEAVES[index], index, wrong_size, proof, REF.mth(0, wrong_size))


@PROFILE
@given(data=st.data(), size2=st.integers(2, MAX_LEAVES))
def test_tampered_consistency_proofs_fail(data: st.DataObject, size2: int) -> None:
    """A flipped bit, a dropped or added node, or a wrong first or second size never verifies."""
    size1 = data.draw(st.integers(1, size2 - 1))
    proof = merkle.consistency_proof(STORE, size1, size2)
    root1, root2 = REF.mth(0, size1), REF.mth(0, size2)

    def rejected(s1: int, s2: int, p: list[bytes]) -> None:
        with pytest.raises(InvalidProofError):
            merkle.verify_consistency(s1, s2, p, REF.mth(0, s1), REF.mth(0, s2))

    which = data.draw(st.integers(0, len(proof) - 1))
    flipped = _flip(proof, which, data.draw(st.integers(0, 255)))
    with pytest.raises(InvalidProofError):
        merkle.verify_consistency(size1, size2, flipped, root1, root2)
    rejected(size1, size2, [*proof[:which], *proof[which + 1 :]])
    where = data.draw(st.integers(0, len(proof)))
    rejected(size1, size2, [*proof[:where], root1, *proof[where:]])
    rejected(data.draw(st.integers(1, size2).filter(lambda s: s != size1)), size2, proof)
    rejected(size1, data.draw(st.integers(size1 + 1, MAX_LEAVES).filter(lambda s: s != size2)), proof)


def test_proof_plans_stay_logarithmic_at_a_billion() -> None:
    """Planning proofs in a huge tree names O(log n) nodes, all of them perfect and inside the tree."""
    size = 1_000_000_007
    for index in (0, 1, size // 3, size - 2, size - 1):
        plan = merkle.plan_inclusion(index, size)
        assert len(plan.ids) <= 2 * 30 + 1
        assert all((n.index + 1) << n.level <= size for n in plan.ids)
    for size1 in (1, 2, 3, 1 << 29, size // 2 + 1, size - 1):
        plan = merkle.plan_consistency(size1, size)
        assert len(plan.ids) <= 2 * 30 + 2
        assert all((n.index + 1) << n.level <= size for n in plan.ids)


def test_bad_requests_and_bad_state_raise() -> None:
    """Out-of-range proof requests, malformed compact ranges and gaps in a store are refused."""
    with pytest.raises(InvalidInputError):
        merkle.plan_inclusion(5, 5)
    with pytest.raises(InvalidInputError):
        merkle.plan_consistency(0, 5)
    with pytest.raises(InvalidInputError):
        merkle.plan_consistency(6, 5)
    assert merkle.consistency_proof(STORE, 7, 7) == []
    with pytest.raises(InvalidInputError):
        merkle.CompactRange(3, [LEAVES[0]])
    with pytest.raises(InvalidInputError):
        merkle.CompactRange.from_bytes(b"\x00" * 9)
    with pytest.raises(InvalidInputError):
        merkle.CompactRange().extend([b"short"])
    store = merkle.MemoryNodeStore()
    store.add_runs(merkle.CompactRange().extend(LEAVES[:4]))
    with pytest.raises(InvalidInputError):
        store.add_runs([merkle.NodeRun(0, 5, (LEAVES[5],))])
    with pytest.raises(InvalidInputError):
        store.get_nodes([merkle.NodeID(0, 4)])
    with pytest.raises(InvalidInputError):
        store.get_nodes([merkle.NodeID(3, 0)])


def test_compact_range_restores_and_continues() -> None:
    """A compact range rebuilt from its bytes continues exactly like the original."""
    original = merkle.CompactRange()
    original.extend(LEAVES[:1000])
    restored = merkle.CompactRange.from_bytes(original.to_bytes())
    original.extend(LEAVES[1000:1500])
    restored.extend(LEAVES[1000:1500])
    assert restored == original and restored.root() == REF.mth(0, 1500)
    assert len(original.to_bytes()) == 8 + 32 * (1500).bit_count()


class StridedReader:
    """A database store's view: only the nodes :func:`merkle.stored_nodes` keeps, plus the leaves;
    every other node is rebuilt, as the PostgreSQL and SQLite readers do."""

    def __init__(self, chunks: Sequence[int]) -> None:
        self.kept: dict[merkle.NodeID, bytes] = {merkle.NodeID(0, i): leaf for i, leaf in enumerate(LEAVES)}
        compact, pos = merkle.CompactRange(), 0
        for chunk in chunks:
            batch = LEAVES[pos : pos + chunk]
            self.kept.update((merkle.NodeID(level, index), h)
                             for level, index, h in merkle.stored_nodes(compact.extend(batch)))
            pos += len(batch)
        self.base_reads = 0

    def get_nodes(self, ids: Sequence[merkle.NodeID]) -> list[bytes]:
        base = merkle.base_nodes(ids)
        self.base_reads += len(base)
        found = merkle.rebuild(ids, {n: self.kept[n] for n in base if n in self.kept})
        return [found[n] for n in ids]


STRIDED = StridedReader([MAX_LEAVES // 2 - 5, 1, 7, MAX_LEAVES])


def test_stores_keep_only_every_stride_th_level() -> None:
    """Database stores write the nodes of levels STRIDE, 2*STRIDE, ... only: n / 15 rows, not n."""
    levels = {n.level for n in STRIDED.kept}
    assert levels == {0, merkle.STRIDE, 2 * merkle.STRIDE}  # 2048 leaves: levels 0..11
    assert sum(1 for n in STRIDED.kept if n.level) == MAX_LEAVES // 16 + MAX_LEAVES // 256


@PROFILE
@given(data=st.data(), size2=st.integers(1, MAX_LEAVES))
@example(data=None, size2=MAX_LEAVES)
def test_proofs_from_strided_nodes_match_reference(data: st.DataObject | None, size2: int) -> None:
    """Rebuilding the missing levels gives the same proofs and roots as a store of every node,
    reading at most 2**(STRIDE - 1) stored nodes for each node of the proof's O(log n) plan."""
    size1 = data.draw(st.integers(1, size2)) if data is not None else size2 - 1
    index = data.draw(st.integers(0, size2 - 1)) if data is not None else size2 - 1
    STRIDED.base_reads = 0
    assert merkle.inclusion_proof(STRIDED, index, size2) == REF.path(index, 0, size2)
    assert STRIDED.base_reads <= 2 ** (merkle.STRIDE - 1) * len(merkle.plan_inclusion(index, size2).ids)
    assert merkle.consistency_proof(STRIDED, size1, size2) == REF.subproof(size1, 0, size2, True)
    assert merkle.root_at(STRIDED, size2) == REF.mth(0, size2)


def test_rebuild_leaves_out_nodes_with_a_missing_base() -> None:
    """A node is given only when every stored node under it is there; base_nodes names each once."""
    node = merkle.NodeID(3, 1)  # leaves 8..15
    base = merkle.base_nodes([node, merkle.NodeID(2, 2), merkle.NodeID(4, 0)])
    assert base == [*(merkle.NodeID(0, i) for i in range(8, 16)), merkle.NodeID(4, 0)]
    full = {n: STRIDED.kept[n] for n in base}
    assert merkle.rebuild([node], full) == {node: REF.mth(8, 16)}
    del full[merkle.NodeID(0, 13)]
    assert merkle.rebuild([node, merkle.NodeID(4, 0)], full) == {merkle.NodeID(4, 0): REF.mth(0, 16)}
