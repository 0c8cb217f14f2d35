"""Registers every sub-command group on the root app."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Attach each sub-command group that is present in this install."""
    return None
