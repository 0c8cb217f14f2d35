"""Known-answer vectors from outside the project: RFC 6962 proofs and reference roots."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from sealtrail.core import merkle
from sealtrail.errors import InvalidProofError

VECTORS = Path(__file__).resolve().parents[2] / ".." / "shared" / "vectors"
RFC6962 = VECTORS / "rfc6962"


def _cases(kind: str) -> list[Path]:
    return sorted((RFC6962 / kind).rglob("*.json"))


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _b64(text: str) -> bytes:
    return base64.b64decode(text)


def _proof(case: dict[str, Any]) -> list[bytes]:
    return [_b64(h) for h in case["proof"] or []]


def _case_id(path: Path) -> str:
    return str(path.relative_to(RFC6962))


def test_vectors_are_present() -> None:
    """The shared vectors are found beside the repository, so the parametrized tests are not empty."""
    assert len(_cases("inclusion")) >= 90
    assert len(_cases("consistency")) >= 90


@pytest.mark.parametrize("path", _cases("inclusion"), ids=_case_id)
def test_inclusion_vector(path: Path) -> None:
    """verify_inclusion accepts exactly the inclusion cases that do not expect an error."""
    case = _load(path)
    args = (_b64(case["leafHash"]), case["leafIdx"], case["treeSize"], _proof(case), _b64(case["root"]))
    if case["wantErr"]:
        with pytest.raises(InvalidProofError):
            merkle.verify_inclusion(*args)
        assert not merkle.inclusion_ok(*args)
    else:
        merkle.verify_inclusion(*args)
        assert merkle.inclusion_ok(*args)


@pytest.mark.parametrize("path", _cases("consistency"), ids=_case_id)
def test_consistency_vector(path: Path) -> None:
    """verify_consistency accepts exactly the consistency cases that do not expect an error."""
    case = _load(path)
    args = (case["size1"], case["size2"], _proof(case), _b64(case["root1"]), _b64(case["root2"]))
    if case["wantErr"]:
        with pytest.raises(InvalidProofError):
            merkle.verify_consistency(*args)
        assert not merkle.consistency_ok(*args)
    else:
        merkle.verify_consistency(*args)
        assert merkle.consistency_ok(*args)


def _reference_tree() -> tuple[list[bytes], list[bytes]]:
    ref = _load(RFC6962 / "reference-tree.json")
    leaves = [merkle.leaf_hash(bytes.fromhex(h)) for h in ref["leaf_inputs_hex"]]
    return leaves, [bytes.fromhex(h) for h in ref["root_by_size_hex"]]


def test_reference_roots() -> None:
    """root_of, CompactRange and stored-node roots all give the reference roots for N = 0..8."""
    leaves, roots = _reference_tree()
    assert len(roots) == 9
    store = merkle.MemoryNodeStore()
    compact = merkle.CompactRange()
    for size, want in enumerate(roots):
        assert merkle.root_of(leaves[:size]) == want
        assert compact.size == size and compact.root() == want
        if size < len(leaves):
            store.add_runs(compact.extend([leaves[size]]))
    for size, want in enumerate(roots):
        assert merkle.root_at(store, size) == want


def test_reference_proofs_verify() -> None:
    """Proofs generated from the reference tree verify against the reference roots at every size."""
    leaves, roots = _reference_tree()
    store = merkle.MemoryNodeStore()
    store.add_runs(merkle.CompactRange().extend(leaves))
    for size in range(1, 9):
        for index in range(size):
            proof = merkle.inclusion_proof(store, index, size)
            merkle.verify_inclusion(leaves[index], index, size, proof, roots[size])
        for size1 in range(1, size + 1):
            proof = merkle.consistency_proof(store, size1, size)
            merkle.verify_consistency(size1, size, proof, roots[size1], roots[size])


def test_empty_root_is_sha256_of_nothing() -> None:
    """The empty tree's root is SHA-256 of the empty string, as RFC 6962 says."""
    assert merkle.empty_root().hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert merkle.root_of([]) == merkle.empty_root() == merkle.CompactRange().root()
