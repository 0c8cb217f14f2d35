"""Auditing one log from what it publishes: keys, signed checkpoints, entries and payload presence.

These are the checks of DESIGN §8 item 3, shared by ``sealtrail verify`` over HTTP and over an
export bundle. Pure: callers fetch or read the material and feed it in.

1. Every checkpoint satisfies the :class:`~sealtrail.core.verify.TrustedKeys` policy built from
   the published keys and their validity windows. A checkpoint that does not is named by its
   tree size. Two checkpoints of one size with different roots are inconsistent.
2. Entries from index 0 are contiguous, their stored chain values recompute, and the tree of the
   first ``n`` entries has the root of every checkpoint of size ``n``. All checkpoints are thereby
   heads of one sequence of entries: each is consistent with the previous one. There is no entry
   at or beyond the latest checkpoint's size: nothing signed covers it.
3. Every entry's payload is present, and its stored bytes have the digest the entry commits to;
   or its absence is explained by an ``erasure`` event in the verified log (so below the latest
   checkpoint's size) naming one of the entry's key ids in ``erased_key_ids``, or by a
   ``retention`` event naming its period key (the first of its ``key_ids``). An altered or
   unexplained missing payload fails, naming the first such index.
4. Optionally, a checkpoint remembered from an earlier audit (a witness's state) is still part
   of the log: it verifies under the same keys, the log has not shrunk below its size, no
   checkpoint of its size has another root, and the entries now served reproduce its root.
   Without this, an operator holding the signing key could rewrite history and re-sign every
   checkpoint; the served log alone would still verify.
5. Optionally, the latest checkpoint carries a quorum of valid cosignatures from given witnesses
   (:class:`~sealtrail.core.quorum.WitnessPolicy`); by 2 every earlier one is its prefix.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from sealtrail.core.checkpoint import Checkpoint, parse_checkpoint
from sealtrail.core.note import parse_note
from sealtrail.core.quorum import WitnessPolicy
from sealtrail.core.verify import RunState, RunVerifier, TrustedKey, TrustedKeys
from sealtrail.errors import (
    InconsistentCheckpointError,
    NoteError,
    RootMismatchError,
    SealtrailError,
    VerificationError,
)

TRUSTED_PURPOSES = frozenset({"checkpoint", "cosign"})
"""Published key purposes that sign checkpoints; others (receipts) are not trusted for logs."""

_TYPE = b'"type":"'
_SYSTEM = (b'erasure"', b'retention"')
_DIGEST = b'"payload_digest":"'


class AuditEntry:
    """One entry as published: its bytes, stored chain value and the digest of its stored payload.

    ``payload_digest`` is ``"blake3:" + hex`` of the stored nonce and ciphertext, or None when no
    payload is stored for the entry. (A plain slotted class: a verifier makes a million of them,
    and a frozen dataclass costs several times more to build.)
    """

    __slots__ = ("chain", "entry", "index", "payload_digest")

    def __init__(self, index: int, entry: bytes, chain: bytes, payload_digest: str | None) -> None:
        self.index = index
        self.entry = entry
        self.chain = chain
        self.payload_digest = payload_digest

    def _fields(self) -> tuple[int, bytes, bytes, str | None]:
        return (self.index, self.entry, self.chain, self.payload_digest)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AuditEntry) and self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        return f"AuditEntry(index={self.index}, entry=<{len(self.entry)} bytes>, digest={self.payload_digest!r})"

    def replace(self, *, index: int | None = None, entry: bytes | None = None) -> AuditEntry:
        """A copy with another index or other entry bytes (tests tamper with entries this way)."""
        return AuditEntry(self.index if index is None else index, self.entry if entry is None else entry,
                          self.chain, self.payload_digest)


@dataclass(frozen=True, slots=True)
class AuditReport:
    """What an audit covered."""

    origin: str
    entries: int
    checkpoints: int
    payloads_present: int
    payloads_erased: int
    payloads_expired: int
    erasure_events: int
    retention_events: int
    latest_note: str = ""  # the verified checkpoint note of the largest size
    remembered_size: int | None = None  # size of the remembered checkpoint found consistent
    witnessed_by: tuple[str, ...] = ()  # the given witnesses that cosigned the latest checkpoint
    calls_checked: int | None = None  # rows of the investigation list held to the entries (verify --calls)

    def summary(self) -> str:
        """One line for people."""
        line = (f"OK: {self.origin}: {self.entries} entries, {self.checkpoints} checkpoints verified; "
                f"{self.payloads_present} payloads present, {self.payloads_erased} erased "
                f"(explained by {self.erasure_events} erasure events), {self.payloads_expired} expired "
                f"(explained by {self.retention_events} retention events)")
        if self.remembered_size is not None:
            line += f"; consistent with the checkpoint at size {self.remembered_size} verified before"
        if self.witnessed_by:
            line += f"; latest checkpoint cosigned by witnesses {', '.join(self.witnessed_by)}"
        if self.calls_checked is not None:
            line += f"; the {self.calls_checked} calls the query API shows match the signed entries"
        return line


def trusted_keys(published: Iterable[Any]) -> TrustedKeys:
    """The trust policy from published keys ``{purpose, vkey, not_before, not_after}``.

    Raises :class:`~sealtrail.errors.VerificationError` naming the first malformed key (counted
    from 0): not an object, no string ``vkey``, or a bound that is neither null nor an integer."""
    chosen = []
    for n, k in enumerate(published):
        if not isinstance(k, Mapping):
            raise VerificationError(f"published key {n} is not an object")
        if k.get("purpose") not in TRUSTED_PURPOSES:
            continue
        vkey, bounds = k.get("vkey"), (k.get("not_before"), k.get("not_after"))
        if not isinstance(vkey, str):
            raise VerificationError(f"published key {n} has no vkey string")
        if not all(b is None or _is_int(b) for b in bounds):
            raise VerificationError(f"published key {n} ({vkey}): not_before and not_after must be "
                                    "null or integers (POSIX seconds)")
        chosen.append(TrustedKey.from_vkey(vkey, not_before=bounds[0], not_after=bounds[1]))
    return TrustedKeys(chosen)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def audit_entry(row: Any) -> AuditEntry:
    """An entry from its JSON form ``{"index": int, "entry": base64, "chain": base64,
    "payload_digest": str | null}`` (a bundle line or a JSON entries page).

    Types are checked strictly (an index of ``true`` or ``1.0`` is refused, base64 must be
    canonical alphabet with padding): :class:`ValueError` names what is wrong."""
    if not isinstance(row, dict):
        raise ValueError("not an object")
    index, entry, chain, digest = row.get("index"), row.get("entry"), row.get("chain"), row.get("payload_digest")
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
        raise ValueError("index is not a non-negative integer")
    if not isinstance(entry, str) or not isinstance(chain, str):
        raise ValueError("entry and chain must be base64 strings")
    if digest is not None and not isinstance(digest, str):
        raise ValueError("payload_digest must be a string or null")
    try:
        return AuditEntry(index, base64.b64decode(entry, validate=True), base64.b64decode(chain, validate=True),
                          digest)
    except (binascii.Error, ValueError) as e:
        raise ValueError("entry or chain is not valid base64") from e


def _declared_size(note: str) -> str:
    try:
        return str(parse_checkpoint(parse_note(note).text).size)
    except NoteError:
        return "?"


def verify_checkpoints(keys: TrustedKeys, origin: str, notes: Iterable[str]) -> list[Checkpoint]:
    """Check every note against ``keys``; return the checkpoints by size, without repeats."""
    return [cp for cp, _ in _verified_notes(keys, origin, notes)]


def _verified_notes(keys: TrustedKeys, origin: str, notes: Iterable[str]) -> list[tuple[Checkpoint, str]]:
    by_size: dict[int, tuple[Checkpoint, str]] = {}
    for note in notes:
        try:
            cp = keys.verify_checkpoint(note, origin=origin).checkpoint
        except SealtrailError as e:
            raise VerificationError(f"checkpoint at tree size {_declared_size(note)}: {e}") from e
        seen = by_size.get(cp.size)
        if seen is not None and seen[0].root != cp.root:
            raise InconsistentCheckpointError(f"two checkpoints at tree size {cp.size} differ")
        by_size[cp.size] = (cp, note)
    if not by_size:
        raise VerificationError(f"log {origin} has no signed checkpoint")
    return [by_size[size] for size in sorted(by_size)]


def _remembered(keys: TrustedKeys, origin: str, note: str, served: Sequence[Checkpoint]) -> Checkpoint:
    """The remembered checkpoint, checked against the served ones (see the module docstring, 4)."""
    try:
        cp = keys.verify_checkpoint(note, origin=origin).checkpoint
    except SealtrailError as e:
        raise VerificationError(f"the checkpoint remembered from an earlier verification: {e}") from e
    latest = served[-1]
    if cp.size > latest.size:
        raise InconsistentCheckpointError(
            f"the log now ends at tree size {latest.size}, below the checkpoint at size {cp.size} verified "
            "before: it was truncated or rolled back")
    for other in served:
        if other.size == cp.size and other.root != cp.root:
            raise InconsistentCheckpointError(
                f"the log's checkpoint at tree size {cp.size} differs from the one verified before: "
                "two views of one log (a split view)")
    return cp


@dataclass
class _Payloads:
    present: int = 0
    # key ids of the entries whose payload is missing -> (first such index, count)
    missing: dict[tuple[str, ...], list[int]] = field(default_factory=dict)
    erased_ids: set[str] = field(default_factory=set)
    period_ids: set[str] = field(default_factory=set)
    erasures: int = 0
    retentions: int = 0


class LogAudit:
    """Audits one log: construct with keys, origin and checkpoint notes, :meth:`feed` entries from
    index 0 up to :attr:`size`, then :meth:`finish`. Errors are
    :class:`~sealtrail.errors.VerificationError` subclasses naming the index or checkpoint."""

    def __init__(self, keys: TrustedKeys, origin: str, notes: Iterable[str], *, remembered: str | None = None,
                 witnesses: WitnessPolicy | None = None) -> None:
        """``remembered``: a checkpoint note kept from an earlier audit of this log, to hold the log to.
        ``witnesses``: the latest checkpoint counts only with their quorum of cosignatures (the
        earlier ones are then shown to be its prefixes by the entries)."""
        self.origin = origin
        verified = _verified_notes(keys, origin, notes)
        self.checkpoints = [cp for cp, _ in verified]
        self.latest_note = verified[-1][1]
        self.witnessed_by = () if witnesses is None else witnesses.check(self.latest_note).names
        self._remembered: Checkpoint | None = None
        checked = self.checkpoints
        if remembered is not None:
            self._remembered = _remembered(keys, origin, remembered, self.checkpoints)
            checked = [*checked, self._remembered]
        self._run = RunVerifier(origin, checked)
        self._payloads = _Payloads()

    @property
    def size(self) -> int:
        """The tree size of the latest checkpoint: how many entries to feed."""
        return self.checkpoints[-1].size

    @property
    def fed(self) -> int:
        """Entries verified so far."""
        return self._run.size

    def feed(self, entries: Sequence[AuditEntry]) -> None:
        """Verify the next entries (in index order).

        Entries MUST stop at :attr:`size`: one beyond the latest checkpoint is covered by no
        signed checkpoint (anyone can compute its chain value), so it is refused rather than
        counted, and an ``erasure`` or ``retention`` event there explains nothing."""
        room = self.size - self.fed
        if len(entries) <= room:
            self._feed(entries)
        else:
            self._feed(entries[:room])
            index = self.size
            raise VerificationError(
                f"entry {index} is beyond the latest checkpoint (tree size {index}): no signed checkpoint "
                "covers it", index=index)

    def _feed(self, entries: Sequence[AuditEntry]) -> None:
        try:
            self._run.feed([e.entry for e in entries], [e.chain for e in entries], [e.index for e in entries])
        except RootMismatchError as mismatch:
            mine = self._remembered
            if mine is not None and self._run.size == mine.size and all(
                    c.size != mine.size for c in self.checkpoints):
                raise InconsistentCheckpointError(
                    f"the entries served now do not reproduce the checkpoint at tree size {mine.size} verified "
                    "before, although every checkpoint served verifies: the log's history was rewritten",
                    index=mismatch.index) from mismatch
            raise
        for e in entries:
            self._check_payload(e)

    def run_state(self) -> RunState:
        """Where the run checks of :meth:`feed` stand (see :meth:`resume`)."""
        return self._run.state()

    def resume(self, state: RunState, *, present: int = 0, others: Sequence[AuditEntry] = ()) -> None:
        """Take over after entries that another implementation of :meth:`feed`'s checks verified
        (the native verifier, :mod:`sealtrail.audit.native`): ``state`` is where the run checks
        stand after them, ``present`` how many of them are flat entries whose stored payload digest
        was found equal to the one they commit to, and ``others`` the rest of them, in index order,
        whose payload checks run here. The caller MUST have applied exactly :meth:`feed`'s run
        checks and flat-entry digest check; anything it could not check it MUST feed instead."""
        self._run = RunVerifier.resume(self.origin, state)
        self._payloads.present += present
        for e in others:
            self._check_payload(e)

    def _check_payload(self, e: AuditEntry) -> None:
        # Entries are RFC 8785 JSON: keys sorted, quotes inside strings escaped. In an entry with
        # no nested object (no '{' after the first byte; a '{' inside a string only costs a parse),
        # the one unescaped '"type":"' (near the end: rfind) starts the type's value and the one
        # '"payload_digest":"' the top-level digest's: no header string can imitate either. Any
        # other entry is parsed, so a nested "payload_digest" is never taken for the entry's.
        p, entry = self._payloads, e.entry
        header: dict[str, Any] | None = None
        if entry.find(b"{", 1) >= 0 or entry.startswith(_SYSTEM, entry.rfind(_TYPE) + len(_TYPE)):
            header = _header(e)
            kind = header.get("type")
            if kind == "erasure":
                p.erasures += 1
                p.erased_ids.update(_strings(header, "erased_key_ids", e))
            elif kind == "retention":
                p.retentions += 1
                period = header.get("period_key_id")
                if not isinstance(period, str):
                    raise VerificationError(f"retention event at entry {e.index} has no period_key_id string",
                                            index=e.index)
                p.period_ids.add(period)
        digest = e.payload_digest
        if digest is not None:
            if header is None:  # flat entry: its one '"payload_digest":"' is the top-level key's
                at, raw = entry.find(_DIGEST) + len(_DIGEST), digest.encode()
                # the value is exactly ``raw`` when the first quote after it closes it, unescaped
                ok = (at >= len(_DIGEST) and entry.startswith(raw, at) and entry.find(b'"', at) == at + len(raw)
                      and b"\\" not in raw)
            else:
                ok = header.get("payload_digest") == digest
            if not ok:
                raise VerificationError(
                    f"stored payload of entry {e.index} does not have the digest its entry commits to",
                    index=e.index)
            p.present += 1
            return
        key_ids = tuple(_strings(header or _header(e), "key_ids", e))
        slot = p.missing.setdefault(key_ids, [e.index, 0])
        slot[1] += 1

    def finish(self) -> AuditReport:
        """End the audit; raises if entries stopped short or a missing payload is unexplained."""
        result = self._run.finish()
        p = self._payloads
        erased = expired = 0
        unexplained: list[int] = []
        for key_ids, (first, count) in p.missing.items():
            if key_ids and key_ids[0] in p.period_ids:
                expired += count
            elif any(k in p.erased_ids for k in key_ids):
                erased += count
            else:
                unexplained.append(first)
        if unexplained:
            index = min(unexplained)
            raise VerificationError(
                f"payload of entry {index} is missing and no erasure or retention event explains it",
                index=index)
        mine = self._remembered
        served = result.checkpoints - (mine is not None)  # the remembered one was checked too
        return AuditReport(self.origin, result.entries, served, p.present, erased, expired,
                           p.erasures, p.retentions, self.latest_note, None if mine is None else mine.size,
                           self.witnessed_by)


def _strings(header: dict[str, Any], name: str, e: AuditEntry) -> list[str]:
    """The list of strings ``header[name]`` (empty when absent); a signed entry holding anything
    else there is malformed."""
    value = header.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise VerificationError(f"entry {e.index}: {name} is not a list of strings", index=e.index)
    return value


def _header(e: AuditEntry) -> dict[str, Any]:
    try:
        header = orjson.loads(e.entry)
    except orjson.JSONDecodeError as err:
        raise VerificationError(f"entry {e.index} is not JSON", index=e.index) from err
    if not isinstance(header, dict):
        raise VerificationError(f"entry {e.index} is not a JSON object", index=e.index)
    return header
