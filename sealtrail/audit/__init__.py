"""Auditing a log without trusting the operator: over the query API, or offline from a bundle.

- :func:`audit_live` fetches the published keys, every signed checkpoint and every entry up to
  the latest checkpoint (paged, with payload presence) and runs :class:`~sealtrail.core.audit.LogAudit`.
- :func:`export_bundle` writes the same material to a bundle (:mod:`sealtrail.audit.bundle`).
- :func:`audit_bundle` runs the same checks on a bundle, with no network.

Trust comes from the verifier keys: pass ``pinned_vkeys`` to trust only those; otherwise the
published keys are trusted as fetched (trust on first use). Pins MUST include the log's cosign key
and checkpoint key, and every checkpoint MUST then carry a valid cosignature from a pinned cosign
key, whatever the published keys say (pins lacking it are refused with that reason). Published
validity windows still apply to pinned keys: they can only narrow what the pins allow.
Pass ``remembered``, the latest checkpoint note of an earlier audit, to hold the log to its own
past: a log rewritten and re-signed by whoever holds its key then fails.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from sealtrail.audit.bundle import BundleMeta, BundleWriter, check_output, open_bundle
from sealtrail.audit.client import LogClient
from sealtrail.audit.native import NativeFeed, native_module
from sealtrail.core.audit import AuditReport, LogAudit, trusted_keys
from sealtrail.core.cosignature import CosignatureVerifier
from sealtrail.core.quorum import WitnessPolicy
from sealtrail.core.shown import ShownCalls, entry_pairs
from sealtrail.core.verify import verifier_from_vkey
from sealtrail.errors import VerificationError

__all__ = ["AuditReport", "audit_bundle", "audit_live", "export_bundle"]


def _pinned(keys: list[Any], pinned: Sequence[str] | None) -> list[Any]:
    """The trust policy under pinning: exactly the pinned vkeys, each with the purpose its key type
    gives (never the published one), and every checkpoint cosigned by a pinned cosign key.

    Published windows still apply to a pinned key: they can only narrow what the pin allows. Whether
    a cosignature is needed never depends on the published keys: every checkpoint the ledger signs
    is cosigned (DESIGN §5), and a checkpoint signed by a log key alone is undated, so a retired
    (and perhaps leaked) log key could sign it."""
    if not pinned:
        return keys
    chosen = []
    for vkey in dict.fromkeys(pinned):
        published = next((k for k in keys if isinstance(k, dict) and k.get("vkey") == vkey), {})
        chosen.append({"purpose": _purpose_of(vkey), "vkey": vkey, "not_before": published.get("not_before"),
                       "not_after": published.get("not_after")})
    if not any(k["purpose"] == "cosign" for k in chosen):
        raise VerificationError(
            "with pinned keys every checkpoint must carry a timestamped cosignature from a pinned cosign key: "
            "also pin the log's cosign key (the vkey with purpose cosign in GET /v1/keys or the bundle's "
            "keys.json, as another --vkey)")
    if not any(k["purpose"] == "checkpoint" for k in chosen):
        raise VerificationError(
            "no checkpoint key is pinned: also pin the log's checkpoint key (the vkey with purpose "
            "checkpoint in GET /v1/keys or the bundle's keys.json, as another --vkey)")
    return chosen


def _purpose_of(vkey: str) -> str:
    return "cosign" if isinstance(verifier_from_vkey(vkey), CosignatureVerifier) else "checkpoint"


def _start(keys: list[Any], origin: str, notes: Iterable[str], pinned: Sequence[str] | None,
           remembered: str | None = None, witnesses: WitnessPolicy | None = None) -> LogAudit:
    return LogAudit(trusted_keys(_pinned(keys, pinned)), origin, notes, remembered=remembered,
                    witnesses=witnesses)


async def audit_live(http: httpx.AsyncClient, log: str, *, pinned_vkeys: Sequence[str] | None = None,
                     remembered: str | None = None, witnesses: WitnessPolicy | None = None,
                     calls: bool = False) -> AuditReport:
    """Audit ``log`` through the query API client ``http`` (see the module docstring), holding it to
    the ``remembered`` checkpoint note of an earlier audit, if given, and requiring the latest
    checkpoint to carry the ``witnesses``' quorum of cosignatures, if given. With ``calls`` (a token
    that reads calls), also hold what the investigation list shows of every entry to the verified
    entries (:mod:`sealtrail.core.shown`)."""
    client = LogClient(http, log)
    keys, origin, notes = await client.keys(), await client.origin(), await client.checkpoint_notes()
    audit = _start(keys, origin, notes, pinned_vkeys, remembered, witnesses)
    shown = None
    if calls:
        shown = ShownCalls(log, audit.size)
        async for body in client.iter_calls():
            shown.add_page(body)
    module = native_module() if shown is None else None
    if module is not None:
        feed = NativeFeed(audit, module)
        async for got in client.iter_pages(audit.size):
            if isinstance(got, bytes):
                feed.page(got)
            else:
                feed.entries_of(got)
    else:
        async for page in client.iter_entries(audit.size):
            audit.feed(page)
            if shown is not None:
                shown.check(entry_pairs(page))
    report = audit.finish()
    if shown is not None:
        report = dataclasses.replace(report, calls_checked=shown.finish())
    return report


async def export_bundle(http: httpx.AsyncClient, log: str, out: Path) -> BundleMeta:
    """Write ``log``'s keys, checkpoints and entries (up to the latest checkpoint) to ``out``.

    ``out`` appears only when the bundle is complete: on any failure nothing is left there (see
    :mod:`sealtrail.audit.bundle`)."""
    check_output(out)  # before any request: a bad path is reported without a round trip
    client = LogClient(http, log)
    keys, origin, notes = await client.keys(), await client.origin(), await client.checkpoint_notes()
    audit = _start(keys, origin, notes, None)  # refuse to export material that does not verify
    meta = BundleMeta(log, origin, audit.size, datetime.now(UTC).isoformat())
    writer = BundleWriter(out)
    try:
        writer.write_header(meta, keys, notes)
        async for page in client.iter_entries(audit.size):
            writer.write_entries(page)
    except BaseException:
        writer.abort()
        raise
    writer.close()
    return meta


def audit_bundle(path: Path, *, pinned_vkeys: Sequence[str] | None = None,
                 remembered: str | None = None, witnesses: WitnessPolicy | None = None) -> AuditReport:
    """Audit the bundle at ``path`` offline (``remembered`` and ``witnesses`` as for :func:`audit_live`)."""
    with open_bundle(path) as bundle:
        audit = _start(bundle.keys, bundle.meta.origin, bundle.notes, pinned_vkeys, remembered, witnesses)
        if audit.size != bundle.meta.size:
            raise VerificationError(f"bundle says size {bundle.meta.size} but its latest checkpoint "
                                    f"has size {audit.size}")
        module = native_module()
        if module is None:
            for chunk in bundle.entries():
                audit.feed(chunk)
        else:
            NativeFeed(audit, module).entries(bundle.entries_file)
        return audit.finish()
