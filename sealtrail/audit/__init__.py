"""Auditing a log without trusting the operator: over the query API, or offline from a bundle.

- :func:`audit_live` fetches the published keys, every signed checkpoint and every entry up to
  the latest checkpoint (paged, with payload presence) and runs :class:`~sealtrail.core.audit.LogAudit`.
- :func:`export_bundle` writes the same material to a bundle (:mod:`sealtrail.audit.bundle`).
- :func:`audit_bundle` runs the same checks on a bundle, with no network.

Trust comes from the verifier keys: pass ``pinned_vkeys`` to trust only those (published
windows still apply); otherwise the published keys are trusted as fetched (trust on first use).
Pass ``remembered``, the latest checkpoint note of an earlier audit, to hold the log to its own
past: a log rewritten and re-signed by whoever holds its key then fails.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from sealtrail.audit.bundle import BundleMeta, BundleWriter, open_bundle
from sealtrail.audit.client import LogClient
from sealtrail.core.audit import AuditReport, LogAudit, trusted_keys
from sealtrail.core.cosignature import CosignatureVerifier
from sealtrail.core.verify import verifier_from_vkey
from sealtrail.errors import VerificationError

__all__ = ["AuditReport", "audit_bundle", "audit_live", "export_bundle"]


def _pinned(keys: list[dict[str, Any]], pinned: Sequence[str] | None) -> list[dict[str, Any]]:
    if not pinned:
        return keys
    chosen = [k for k in keys if k.get("vkey") in set(pinned)]
    for vkey in pinned:
        if not any(k.get("vkey") == vkey for k in keys):
            chosen.append({"purpose": _purpose_of(vkey), "vkey": vkey, "not_before": None, "not_after": None})
    return chosen


def _purpose_of(vkey: str) -> str:
    return "cosign" if isinstance(verifier_from_vkey(vkey), CosignatureVerifier) else "checkpoint"


def _start(keys: list[dict[str, Any]], origin: str, notes: Iterable[str], pinned: Sequence[str] | None,
           remembered: str | None = None) -> LogAudit:
    return LogAudit(trusted_keys(_pinned(keys, pinned)), origin, notes, remembered=remembered)


async def audit_live(http: httpx.AsyncClient, log: str, *, pinned_vkeys: Sequence[str] | None = None,
                     remembered: str | None = None) -> AuditReport:
    """Audit ``log`` through the query API client ``http`` (see the module docstring), holding it to
    the ``remembered`` checkpoint note of an earlier audit, if given."""
    client = LogClient(http, log)
    keys, origin, notes = await client.keys(), await client.origin(), await client.checkpoint_notes()
    audit = _start(keys, origin, notes, pinned_vkeys, remembered)
    async for page in client.iter_entries(audit.size):
        audit.feed(page)
    return audit.finish()


async def export_bundle(http: httpx.AsyncClient, log: str, out: Path) -> BundleMeta:
    """Write ``log``'s keys, checkpoints and entries (up to the latest checkpoint) to ``out``."""
    client = LogClient(http, log)
    keys, origin, notes = await client.keys(), await client.origin(), await client.checkpoint_notes()
    audit = _start(keys, origin, notes, None)  # refuse to export material that does not verify
    meta = BundleMeta(log, origin, audit.size, datetime.now(UTC).isoformat())
    writer = BundleWriter(out)
    try:
        writer.write_header(meta, keys, notes)
        async for page in client.iter_entries(audit.size):
            writer.write_entries(page)
    finally:
        writer.close()
    return meta


def audit_bundle(path: Path, *, pinned_vkeys: Sequence[str] | None = None,
                 remembered: str | None = None) -> AuditReport:
    """Audit the bundle at ``path`` offline (``remembered`` as for :func:`audit_live`)."""
    with open_bundle(path) as bundle:
        audit = _start(bundle.keys, bundle.meta.origin, bundle.notes, pinned_vkeys, remembered)
        if audit.size != bundle.meta.size:
            raise VerificationError(f"bundle says size {bundle.meta.size} but its latest checkpoint "
                                    f"has size {audit.size}")
        for chunk in bundle.entries():
            audit.feed(chunk)
        return audit.finish()
