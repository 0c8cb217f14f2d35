"""The auditor's commands behind ``sealtrail verify`` (live, bundle) and ``sealtrail export``.

They print one line on success and exit 1 with a one-line reason otherwise (see ``verify.py``).
Only the light install is needed: httpx and the pure core.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from sealtrail.cli.verify import fail
from sealtrail.errors import SealtrailError


def _reason(e: SealtrailError) -> str:
    index = getattr(e, "index", None)
    text = str(e)
    if index is not None and f"{index}" not in text:
        text += f" (first bad index {index})"
    return text


def run_live(*, url: str, log: str, token: str, pins: list[str]) -> None:
    from sealtrail.audit import audit_live
    from sealtrail.audit.client import http_client

    async def go() -> str:
        async with http_client(url, token) as http:
            return (await audit_live(http, log, pinned_vkeys=pins)).summary()

    try:
        line = asyncio.run(go())
    except SealtrailError as e:
        raise fail(_reason(e)) from e
    typer.echo(line)


def run_bundle(path: Path, *, pins: list[str]) -> None:
    from sealtrail.audit import audit_bundle

    try:
        line = audit_bundle(path, pinned_vkeys=pins).summary()
    except SealtrailError as e:
        raise fail(_reason(e)) from e
    typer.echo(line)


def export(
    url: Annotated[str, typer.Option("--url", help="Base URL of the query API")],
    log: Annotated[str, typer.Option("--log", help="Log id (the tenant id)")],
    token: Annotated[str, typer.Option("--token", envvar="SEALTRAIL_TOKEN",
                                       help="API key with proofs:read (prefer SEALTRAIL_TOKEN)")],
    out: Annotated[Path, typer.Option("--out", help="New directory, or a .tar / .tar.gz file")],
) -> None:
    """Write a self-contained bundle of a log (keys, checkpoints, entries, payload presence)."""
    from sealtrail.audit import export_bundle
    from sealtrail.audit.client import http_client

    async def go() -> str:
        async with http_client(url, token) as http:
            meta = await export_bundle(http, log, out)
        return f"wrote {out}: {meta.origin}, {meta.size} entries"

    try:
        line = asyncio.run(go())
    except SealtrailError as e:
        typer.echo(f"error: {_reason(e)}", err=True)
        raise typer.Exit(1) from e
    typer.echo(line)
