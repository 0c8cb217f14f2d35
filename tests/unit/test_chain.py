"""The per-log BLAKE3 hash chain of DESIGN §5."""

from __future__ import annotations

from blake3 import blake3

from sealtrail.core import chain
from sealtrail.core.merkle import leaf_hash

ORIGIN = "sealtrail.example/t/acme"
LEAVES = [leaf_hash(b"entry %d" % i) for i in range(20)]


def test_seed_and_step_follow_the_design() -> None:
    """chain[-1] = BLAKE3(origin) and chain[i] = BLAKE3(chain[i-1] || leaf[i])."""
    seed = chain.chain_seed(ORIGIN)
    assert seed == blake3(ORIGIN.encode()).digest()
    assert chain.chain_next(seed, LEAVES[0]) == blake3(seed + LEAVES[0]).digest()
    assert len(seed) == chain.CHAIN_SIZE


def test_fold_and_head_agree_with_stepping() -> None:
    """Folding a run gives each step's value, and the head is the last one (or the seed when empty)."""
    seed = chain.chain_seed(ORIGIN)
    values, prev = [], seed
    for leaf in LEAVES:
        prev = chain.chain_next(prev, leaf)
        values.append(prev)
    assert chain.chain_fold(seed, LEAVES) == values
    assert chain.chain_head(seed, LEAVES) == values[-1]
    assert chain.chain_head(seed, []) == seed
    assert chain.chain_fold(values[9], LEAVES[10:]) == values[10:]


def test_first_mismatch_names_the_first_bad_position() -> None:
    """An altered stored value, an altered leaf or a missing stored value is found at its position."""
    seed = chain.chain_seed(ORIGIN)
    stored = chain.chain_fold(seed, LEAVES)
    assert chain.first_chain_mismatch(seed, LEAVES, stored) is None
    assert chain.first_chain_mismatch(seed, LEAVES, [*stored[:7], bytes(32), *stored[8:]]) == 7
    leaves = [*LEAVES[:3], leaf_hash(b"edited"), *LEAVES[4:]]
    assert chain.first_chain_mismatch(seed, leaves, stored) == 3
    assert chain.first_chain_mismatch(seed, LEAVES, stored[:12]) == 12
    assert chain.first_chain_mismatch(chain.chain_seed("other.example/log"), LEAVES, stored) == 0
