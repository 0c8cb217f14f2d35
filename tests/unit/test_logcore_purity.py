"""The verifiable-log core stays pure: no I/O library is imported by its modules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "sealtrail" / "core"
LOG_CORE = ("merkle", "chain", "note", "checkpoint", "cosignature", "tlogproof", "verify")
ALLOWED = {
    "__future__", "base64", "binascii", "blake3", "collections", "dataclasses", "hashlib", "itertools",
    "nacl", "re", "secrets", "struct", "typing", "sealtrail",
}  # fmt: skip


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("module", LOG_CORE)
def test_log_core_imports_nothing_but_pure_libraries(module: str) -> None:
    """Each log-core module imports only hashing, signing and standard pure modules."""
    assert _imports(CORE / f"{module}.py") <= ALLOWED


@pytest.mark.parametrize("module", LOG_CORE)
def test_log_core_does_not_reach_into_services(module: str) -> None:
    """Each log-core module imports from sealtrail only the core and the error hierarchy."""
    tree = ast.parse((CORE / f"{module}.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sealtrail"):
            assert node.module.startswith("sealtrail.core") or node.module == "sealtrail.errors"
