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
from sealtrail.core.quorum import WitnessPolicy
from sealtrail.errors import SealtrailError


def _reason(e: SealtrailError) -> str:
    index = getattr(e, "index", None)
    text = str(e)
    if index is not None and f"{index}" not in text:
        text += f" (first bad index {index})"
    return text


def run_live(*, url: str, log: str, token: str, pins: list[str], state: Path | None = None,
             witnesses: WitnessPolicy | None = None, calls: bool = False) -> None:
    from sealtrail.audit import AuditReport, audit_live
    from sealtrail.audit.client import http_client

    remembered = _read_state(state)

    async def go() -> AuditReport:
        async with http_client(url, token) as http:
            return await audit_live(http, log, pinned_vkeys=pins, remembered=remembered, witnesses=witnesses,
                                    calls=calls)

    try:
        report = asyncio.run(go())
    except SealtrailError as e:
        raise fail(_reason(e)) from e
    typer.echo(report.summary() + _keep_state(state, report.latest_note, remembered))


def run_bundle(path: Path, *, pins: list[str], state: Path | None = None,
               witnesses: WitnessPolicy | None = None) -> None:
    from sealtrail.audit import audit_bundle

    remembered = _read_state(state)
    try:
        report = audit_bundle(path, pinned_vkeys=pins, remembered=remembered, witnesses=witnesses)
    except SealtrailError as e:
        raise fail(_reason(e)) from e
    except OSError as e:
        raise fail(f"cannot read bundle {path}: {e.strerror or type(e).__name__}") from e
    typer.echo(report.summary() + _keep_state(state, report.latest_note, remembered))


def _read_state(state: Path | None) -> str | None:
    """The remembered checkpoint note, or None when there is no state file yet."""
    if state is None or not state.exists():
        return None
    try:
        return state.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise fail(f"state file {state}: cannot read it ({type(e).__name__})") from e


def _keep_state(state: Path | None, latest: str, remembered: str | None) -> str:
    """Remember ``latest`` in ``state`` unless it is what is remembered already; say what was done."""
    if state is None:
        return ""
    if latest == remembered:
        return f"; {state} unchanged"
    tmp = state.with_name(state.name + ".tmp")
    try:
        tmp.write_text(latest, encoding="utf-8")
        tmp.replace(state)  # atomic: a crash leaves the old state or the new one, never half of one
    except OSError as e:
        raise fail(f"state file {state}: cannot write it ({type(e).__name__}); the log verified") from e
    return f"; checkpoint at size {_size(latest)} remembered in {state}"


def _size(note: str) -> int:
    from sealtrail.core.checkpoint import parse_checkpoint
    from sealtrail.core.note import parse_note

    return parse_checkpoint(parse_note(note).text).size


def export(
    url: Annotated[str, typer.Option("--url", help="Base URL of the query API")],
    log: Annotated[str, typer.Option("--log", help="Log id (the tenant id)")],
    token: Annotated[str, typer.Option("--token", envvar="SEALTRAIL_TOKEN",
                                       help="API key with proofs:read (prefer SEALTRAIL_TOKEN)")],
    out: Annotated[Path, typer.Option(
        "--out", help="New directory (no suffix), or a .tar, .tar.gz or .tgz file; written only if complete")],
) -> None:
    """Write a self-contained bundle of a log (keys, checkpoints, entries, payload presence).

    The bundle is written under a temporary name next to --out and renamed into place when
    complete: a failed export leaves nothing at --out, so a retry can use the same path."""
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
    except OSError as e:
        typer.echo(f"error: cannot write {out}: {e.strerror or type(e).__name__}; nothing was left there",
                   err=True)
        raise typer.Exit(1) from e
    typer.echo(line)
