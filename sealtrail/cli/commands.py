"""Registers every sub-command group on the root app.

Each module named in ``_GROUPS`` exposes ``register(app)``. Modules that need the server extras
import them inside their commands, so the light install (library, SDK, verifier) still works.
"""

from __future__ import annotations

import importlib
import importlib.util

import typer

_GROUPS = (
    "sealtrail.cli.verify",
    "sealtrail.cli.admin",
    "sealtrail.cli.services",
    "sealtrail.cli.ledger",
    "sealtrail.cli.projector",
    "sealtrail.cli.query",
    "sealtrail.cli.serve",
    "sealtrail.cli.demo",
    "sealtrail.cli.bench",
    "sealtrail.cli.gateway",
    "sealtrail.cli.witness",
)


def register(app: typer.Typer) -> None:
    """Attach each sub-command group that is present in this install."""
    for name in _GROUPS:
        if importlib.util.find_spec(name) is None:
            continue
        module = importlib.import_module(name)
        module.register(app)
