"""Layering rules, checked on the source: pure core, light SDK, services apart from each other."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IO_MODULES = {"asyncio", "asyncpg", "aiokafka", "httpx", "fastapi", "sqlite3", "socket", "subprocess",
              "uvicorn", "requests", "starlette"}
SERVER_MODULES = {"asyncpg", "aiokafka", "fastapi", "uvicorn", "starlette", "prometheus_client"}
# The only part of a service that another service may import: its published interface.
PUBLISHED = {"services.ledger.reader", "services.ledger.postgres.reader", "services.ledger.sqlite.reader"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("path", _files("sealtrail/core"), ids=lambda p: p.name)
def test_core_imports_no_io(path: Path) -> None:
    """The pure core imports no I/O library: it receives data or callbacks."""
    bad = {m for m in _imports(path) if m.split(".")[0] in IO_MODULES}
    assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


@pytest.mark.parametrize("path", _files("sealtrail/sdk"), ids=lambda p: p.name)
def test_sdk_stays_light(path: Path) -> None:
    """The gateway SDK needs none of the server dependencies."""
    bad = {m for m in _imports(path) if m.split(".")[0] in SERVER_MODULES or m.startswith("services")}
    assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


@pytest.mark.parametrize("path", [p for p in _files("sealtrail") if "cli" not in p.parts],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_library_does_not_import_services(path: Path) -> None:
    """The library never depends on a service; only the CLI wires services in."""
    bad = {m for m in _imports(path) if m.split(".")[0] == "services"}
    assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


@pytest.mark.parametrize("path", _files("services"), ids=lambda p: str(p.relative_to(ROOT)))
def test_services_do_not_import_each_others_internals(path: Path) -> None:
    """A service imports another service only through its published interface."""
    own = path.relative_to(ROOT).parts[1] if len(path.relative_to(ROOT).parts) > 2 else ""
    for module in _imports(path):
        parts = module.split(".")
        if parts[0] != "services" or len(parts) < 2 or parts[1] == own:
            continue
        assert any(module == p or module.startswith(p + ".") for p in PUBLISHED), (
            f"{path.relative_to(ROOT)} imports {module}, an internal of services.{parts[1]}"
        )


# Composition roots: the only modules that pick adapters (the CLI and each service's app/process factories).
COMPOSITION_ROOTS = ("sealtrail/cli/", "sealtrail/devstack/", "services/*/app.py", "services/*/service.py",
                     "services/query/stores.py")
SERVICES = ("ingest", "ledger", "projector", "query", "gateway", "witness")


def _is_root(path: Path) -> bool:
    rel = path.relative_to(ROOT).as_posix()
    return any(rel.startswith(r) if r.endswith("/") else Path(rel).match(r) for r in COMPOSITION_ROOTS)


def _adapter_package(module: str) -> str | None:
    """The adapter package a module belongs to (``services.query.postgres``), or None for a non-adapter."""
    parts = module.split(".")
    if parts[0] == "services" and len(parts) >= 3 and parts[2] in ("postgres", "sqlite", "kafka", "locallog"):
        return ".".join(parts[:3])
    if parts[:2] == ["sealtrail", "infra"] and len(parts) >= 3 and parts[2].endswith(("_postgres", "_sqlite")):
        return ".".join(parts[:3])
    return None


def _module(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


@pytest.mark.parametrize("path", [p for p in _files("services") + _files("sealtrail") if not _is_root(p)],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_only_composition_roots_import_adapters(path: Path) -> None:
    """Ports, core and service logic never pick a storage or bus adapter; an adapter may use its own package."""
    own = _adapter_package(_module(path))
    bad = {m for m in _imports(path) if _adapter_package(m) is not None and _adapter_package(m) != own}
    assert not bad, f"{path.relative_to(ROOT)} imports the adapters {sorted(bad)}; only composition roots may"


@pytest.mark.parametrize("service", SERVICES)
def test_service_file_names_say_port_or_adapter(service: str) -> None:
    """No `<port>_postgres.py` / `<port>_sqlite.py` beside a port: adapters live in postgres/ and sqlite/."""
    folder = ROOT / "services" / service
    if not folder.exists():
        pytest.fail(f"services/{service} is missing") if service in ("ingest", "ledger", "projector", "query") else None
        return
    odd = sorted(p.name for p in folder.glob("*.py") if p.stem.endswith(("_postgres", "_sqlite", "_store")))
    assert not odd, f"services/{service} has {odd}; put ports in ports.py and adapters in postgres/ and sqlite/"
