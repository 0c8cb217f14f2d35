"""The verifier API behind ``sealtrail verify`` and the services' self-checks.

Everything here is pure: callers read files, rows or HTTP responses and pass bytes in. Every
failure raises a :class:`~sealtrail.errors.VerificationError` subclass (or :class:`NoteError` for
malformed text); run verification names the first bad index in ``.index``.

Trust policy for signed checkpoints (:class:`TrustedKeys`): a checkpoint MUST carry a valid
signature from a trusted log key (type 0x01). When the set holds cosigner keys (type 0x04), it
MUST also carry a valid cosignature from one of them whose timestamp lies inside that cosigner
key's window, and the log key MUST be valid at that time too. A key with a window can only be
honoured at a cosigned time. Signature lines from unknown keys are ignored; a line from a trusted
key that does not verify rejects the note.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from sealtrail.core.chain import chain_seed, first_chain_mismatch
from sealtrail.core.checkpoint import Checkpoint, parse_checkpoint
from sealtrail.core.cosignature import COSIGNATURE_TYPE, CosignatureVerifier, signature_timestamp
from sealtrail.core.merkle import (
    CompactRange,
    empty_root,
    leaf_hash,
    leaf_hashes,
    verify_consistency,
    verify_inclusion,
)
from sealtrail.core.note import ED25519_TYPE, Ed25519Verifier, decode_vkey, parse_note
from sealtrail.core.quorum import WitnessPolicy
from sealtrail.core.tlogproof import TlogProof, parse_proof
from sealtrail.errors import (
    ChainMismatchError,
    InconsistentCheckpointError,
    InvalidInputError,
    InvalidProofError,
    NoteError,
    RootMismatchError,
    SequenceGapError,
    SignatureError,
    VerificationError,
)

RUN_CHUNK = 65536

KeyVerifier = Ed25519Verifier | CosignatureVerifier


# --- proofs ------------------------------------------------------------------------------------


def check_inclusion(entry: bytes, index: int, proof: Sequence[bytes], checkpoint: Checkpoint) -> None:
    """Check that ``entry`` is entry ``index`` of the tree ``checkpoint`` commits to."""
    verify_inclusion(leaf_hash(entry), index, checkpoint.size, proof, checkpoint.root)


def check_consistency(old: Checkpoint, new: Checkpoint, proof: Sequence[bytes]) -> None:
    """Check that ``new`` extends ``old``; raises :class:`InconsistentCheckpointError` if not shown.

    The empty tree is consistent with every tree and needs no proof.
    """
    if old.origin != new.origin:
        raise InconsistentCheckpointError(f"checkpoints of different logs: {old.origin!r}, {new.origin!r}")
    if old.size == 0:
        if old.root != empty_root() or proof:
            raise InconsistentCheckpointError("an empty tree has the empty root and needs no proof")
        return
    try:
        verify_consistency(old.size, new.size, proof, old.root, new.root)
    except InvalidProofError as e:
        raise InconsistentCheckpointError(
            f"tree at size {new.size} is not shown to extend tree at size {old.size}: {e.detail}"
        ) from e


# --- trusted keys ------------------------------------------------------------------------------


def verifier_from_vkey(vkey: str) -> KeyVerifier:
    """Parse a vkey of type 0x01 (log key) or 0x04 (cosigner key); :class:`NoteError` otherwise."""
    sig_type = decode_vkey(vkey).sig_type
    if sig_type == ED25519_TYPE:
        return Ed25519Verifier.from_vkey(vkey)
    if sig_type == COSIGNATURE_TYPE:
        return CosignatureVerifier.from_vkey(vkey)
    raise NoteError(f"unsupported verifier key type 0x{sig_type:02x}")


@dataclass(frozen=True)
class TrustedKey:
    """A trusted key and its validity window ``[not_before, not_after)`` in POSIX seconds."""

    verifier: KeyVerifier
    not_before: int | None = None
    not_after: int | None = None

    @classmethod
    def from_vkey(
        cls, vkey: str, *, not_before: int | None = None, not_after: int | None = None
    ) -> TrustedKey:
        """Trust the key a vkey string names, within the given window."""
        return cls(verifier_from_vkey(vkey), not_before, not_after)

    @property
    def is_cosigner(self) -> bool:
        """Whether this is a type 0x04 cosigner key."""
        return isinstance(self.verifier, CosignatureVerifier)

    @property
    def unbounded(self) -> bool:
        """Whether the key has no validity window."""
        return self.not_before is None and self.not_after is None

    def valid_at(self, timestamp: int) -> bool:
        """Whether ``timestamp`` lies in ``[not_before, not_after)``."""
        lo_ok = self.not_before is None or timestamp >= self.not_before
        return lo_ok and (self.not_after is None or timestamp < self.not_after)


@dataclass(frozen=True)
class VerifiedCheckpoint:
    """A checkpoint whose signatures satisfied a :class:`TrustedKeys` policy."""

    checkpoint: Checkpoint
    timestamp: int | None
    log_keys: tuple[str, ...]
    cosigners: tuple[str, ...]


class TrustedKeys:
    """The log and cosigner keys an auditor trusts, with rotation windows (see the module doc)."""

    def __init__(self, keys: Iterable[TrustedKey]) -> None:
        self._keys: dict[tuple[str, int], TrustedKey] = {}
        for key in keys:
            ident = (key.verifier.name, key.verifier.key_id)
            if ident in self._keys:
                raise InvalidInputError(f"key {ident[0]} ({ident[1]:08x}) is listed twice")
            self._keys[ident] = key
        if not self._keys:
            raise InvalidInputError("at least one trusted key is needed")
        self._needs_cosignature = any(k.is_cosigner for k in self._keys.values())

    @classmethod
    def from_vkeys(cls, vkeys: Iterable[str]) -> TrustedKeys:
        """Trust each vkey without a validity window."""
        return cls(TrustedKey.from_vkey(v) for v in vkeys)

    def verify_checkpoint(self, note: str | bytes, *, origin: str | None = None) -> VerifiedCheckpoint:
        """Check a signed checkpoint note against this policy and return what it proves."""
        parsed = parse_note(note)
        checkpoint = parse_checkpoint(parsed.text)
        if origin is not None and checkpoint.origin != origin:
            raise VerificationError(f"checkpoint is for log {checkpoint.origin!r}, not {origin!r}")
        text = parsed.text.encode("utf-8")
        log_keys: list[TrustedKey] = []
        cosigned: list[tuple[TrustedKey, int]] = []
        for sig in parsed.signatures:
            key = self._keys.get((sig.name, sig.key_id))
            if key is None:
                continue
            if not key.verifier.verify(text, sig.signature):
                raise SignatureError(f"signature by trusted key {sig.name} does not verify")
            if key.is_cosigner:
                cosigned.append((key, signature_timestamp(sig.signature)))
            else:
                log_keys.append(key)
        if not log_keys:
            raise SignatureError("checkpoint is not signed by a trusted log key")
        if not self._needs_cosignature:
            return self._untimed(checkpoint, log_keys)
        return self._timed(checkpoint, log_keys, cosigned)

    @staticmethod
    def _untimed(checkpoint: Checkpoint, log_keys: list[TrustedKey]) -> VerifiedCheckpoint:
        usable = [k for k in log_keys if k.unbounded]
        if not usable:
            raise SignatureError("log key has a validity window but no trusted cosigner gives a time")
        return VerifiedCheckpoint(checkpoint, None, tuple(k.verifier.name for k in usable), ())

    @staticmethod
    def _timed(
        checkpoint: Checkpoint, log_keys: list[TrustedKey], cosigned: list[tuple[TrustedKey, int]]
    ) -> VerifiedCheckpoint:
        if not cosigned:
            raise SignatureError("checkpoint carries no trusted cosignature")
        in_window = sorted(((ts, k) for k, ts in cosigned if k.valid_at(ts)), key=lambda p: -p[0])
        if not in_window:
            raise SignatureError("checkpoint was cosigned outside its cosigner key's validity window")
        for ts, cosigner in in_window:
            signers = [k for k in log_keys if k.valid_at(ts)]
            if signers:
                names = tuple(k.verifier.name for k in signers)
                return VerifiedCheckpoint(checkpoint, ts, names, (cosigner.verifier.name,))
        raise SignatureError(
            f"checkpoint was signed by a log key outside its validity window at {in_window[0][0]}"
        )


@dataclass(frozen=True)
class VerifiedProof:
    """An entry shown to be in a log by a ``.tlog-proof`` file."""

    index: int
    checkpoint: VerifiedCheckpoint
    extra: bytes | None
    witnessed_by: tuple[str, ...] = ()


def verify_proof_file(
    data: str | bytes | TlogProof, entry: bytes, keys: TrustedKeys, *, origin: str | None = None,
    witnesses: WitnessPolicy | None = None,
) -> VerifiedProof:
    """Check a tlog-proof file against the entry bytes and a trusted key set (and, when given, that
    its checkpoint carries the witnesses' quorum of cosignatures)."""
    proof = data if isinstance(data, TlogProof) else parse_proof(data)
    verified = keys.verify_checkpoint(proof.note, origin=origin)
    witnessed = () if witnesses is None else witnesses.check(proof.note).names
    check_inclusion(entry, proof.index, proof.proof, verified.checkpoint)
    return VerifiedProof(proof.index, verified, proof.extra, witnessed)


# --- runs of entries ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RunResult:
    """What a run verification covered."""

    entries: int
    chain_head: bytes
    checkpoints: int
    tree: CompactRange


@dataclass(frozen=True)
class RunState:
    """Where a run stands between two feeds: enough for :meth:`RunVerifier.resume` to carry on.

    ``size`` entries verified, ``hashes`` their compact range (left to right), ``prev_chain`` the
    chain value of the last one, ``pending`` the checkpoints not yet reached (by size), ``good``
    the size of the last checkpoint matched (or of the run's start), ``matched`` how many were."""

    size: int
    hashes: tuple[bytes, ...]
    prev_chain: bytes
    pending: tuple[Checkpoint, ...]
    good: int
    matched: int


class RunVerifier:
    """Checks a log's stored entries and chain values, in order, against trusted checkpoints.

    Feed entries in index order with :meth:`feed`, then call :meth:`finish`. Errors name the first
    bad index: :class:`SequenceGapError` (an index is not the next one, or the entries stop before
    a checkpoint's size), :class:`ChainMismatchError` (a stored chain value differs from its
    recomputation) or :class:`RootMismatchError` (the chain is intact but a checkpoint's root is
    not; ``.index`` is then the first index after the last checkpoint that matched). After an
    error the verifier refuses further input.
    """

    def __init__(
        self,
        origin: str,
        checkpoints: Iterable[Checkpoint] = (),
        *,
        prev_chain: bytes | None = None,
        tree: CompactRange | None = None,
    ) -> None:
        self._tree = tree.copy() if tree is not None else CompactRange()
        if self._tree.size and prev_chain is None:
            raise InvalidInputError("starting mid-log needs the chain value before the first entry")
        self._prev = prev_chain if prev_chain is not None else chain_seed(origin)
        pending = sorted(checkpoints, key=lambda c: c.size)
        for cp in pending:
            if cp.origin != origin:
                raise VerificationError(f"checkpoint is for log {cp.origin!r}, not {origin!r}")
            if cp.size < self._tree.size:
                raise InvalidInputError(f"checkpoint at size {cp.size} precedes the run's start")
        self._pending = pending
        self._good = self._tree.size
        self._matched = 0
        self._failed = False
        self._check_due()

    @property
    def size(self) -> int:
        """Entries verified so far (counting from index 0)."""
        return self._tree.size

    def state(self) -> RunState:
        """Where the run stands (for another implementation of these checks to carry on from)."""
        if self._failed:
            raise VerificationError("run verification already failed")
        return RunState(self._tree.size, tuple(self._tree.hashes), self._prev, tuple(self._pending),
                        self._good, self._matched)

    @classmethod
    def resume(cls, origin: str, state: RunState) -> RunVerifier:
        """A verifier carrying on from ``state``, which MUST come from :meth:`state` or from an
        implementation of exactly these checks over the entries before it."""
        run = cls(origin, state.pending, prev_chain=state.prev_chain, tree=CompactRange(state.size, state.hashes))
        run._good, run._matched = state.good, state.matched
        return run

    def feed(
        self, entries: Sequence[bytes], chains: Sequence[bytes], indices: Sequence[int] | None = None
    ) -> None:
        """Verify the next entries, their stored chain values and (optionally) their indices."""
        if self._failed:
            raise VerificationError("run verification already failed")
        self._failed = True
        leaves = leaf_hashes(entries)
        problem = _first_problem(self._tree.size, self._prev, leaves, chains, indices)
        stop = problem[0] if problem is not None else len(leaves)
        self._extend(leaves[:stop])
        if problem is not None:
            raise problem[1]
        if leaves:
            self._prev = chains[len(leaves) - 1]
        self._failed = False

    def _extend(self, leaves: list[bytes]) -> None:
        pos = 0
        while pos < len(leaves):
            cut = len(leaves)
            if self._pending:
                cut = min(cut, pos + self._pending[0].size - self._tree.size)
            self._tree.extend(leaves[pos:cut])
            pos = cut
            self._check_due()

    def _check_due(self) -> None:
        while self._pending and self._pending[0].size == self._tree.size:
            cp = self._pending.pop(0)
            if cp.root != self._tree.root():
                self._failed = True
                raise RootMismatchError(
                    f"entries {self._good}..{cp.size - 1} do not match the checkpoint at size {cp.size}",
                    index=self._good,
                )
            self._good = cp.size
            self._matched += 1

    def finish(self) -> RunResult:
        """End the run; raises :class:`SequenceGapError` if a checkpoint covers entries never fed."""
        if self._failed:
            raise VerificationError("run verification already failed")
        if self._pending:
            size = self._tree.size
            raise SequenceGapError(
                f"entries end at index {size} but a checkpoint covers {self._pending[-1].size}", index=size
            )
        return RunResult(self._tree.size, self._prev, self._matched, self._tree.copy())


def _first_problem(
    start: int, prev: bytes, leaves: Sequence[bytes], chains: Sequence[bytes], indices: Sequence[int] | None
) -> tuple[int, VerificationError] | None:
    """Return the lowest position that is wrong in a batch and why; a gap wins a tie."""
    gap = _first_gap(start, indices, len(leaves)) if indices is not None else None
    bad = first_chain_mismatch(prev, leaves, chains)
    if gap is not None and (bad is None or gap <= bad):
        return gap, SequenceGapError(f"entry {start + gap} is not the next index", index=start + gap)
    if bad is not None:
        return bad, ChainMismatchError(
            f"stored chain value of entry {start + bad} is wrong", index=start + bad
        )
    if len(chains) > len(leaves):
        n = start + len(leaves)
        return len(leaves), SequenceGapError(f"entry {n} is missing but its chain value is stored", index=n)
    return None


def _first_gap(start: int, indices: Sequence[int], count: int) -> int | None:
    for i, (got, want) in enumerate(zip(indices, range(start, start + count), strict=False)):
        if got != want:
            return i
    return None if len(indices) >= count else len(indices)


def verify_run(
    entries: Iterable[bytes],
    chains: Iterable[bytes],
    checkpoints: Checkpoint | Iterable[Checkpoint],
    *,
    origin: str | None = None,
    indices: Iterable[int] | None = None,
) -> RunResult:
    """Verify a whole log from index 0: entry bytes and stored chain values against checkpoints.

    ``checkpoints`` MUST already be trusted (e.g. from :meth:`TrustedKeys.verify_checkpoint`).
    Iterables are consumed in chunks, so a run need not fit in memory.
    """
    cps = [checkpoints] if isinstance(checkpoints, Checkpoint) else list(checkpoints)
    if origin is None:
        if not cps:
            raise InvalidInputError("an origin or at least one checkpoint is needed")
        origin = cps[0].origin
    verifier = RunVerifier(origin, cps)
    for ents, chs, idx in _chunks(entries, chains, indices):
        verifier.feed(ents, chs, idx)
    return verifier.finish()


_Chunk = tuple[Sequence[bytes], Sequence[bytes], Sequence[int] | None]


def _chunks(
    entries: Iterable[bytes], chains: Iterable[bytes], indices: Iterable[int] | None
) -> Iterator[_Chunk]:
    """Yield aligned slices of at most ``RUN_CHUNK`` rows; a shorter input shows as a short slice."""
    if isinstance(entries, Sequence) and isinstance(chains, Sequence):
        idx_seq = list(indices) if indices is not None and not isinstance(indices, Sequence) else indices
        for pos in range(0, max(len(entries), len(chains), 1), RUN_CHUNK):
            cut = slice(pos, pos + RUN_CHUNK)
            yield entries[cut], chains[cut], (idx_seq[cut] if idx_seq is not None else None)
        return
    its = (iter(entries), iter(chains), iter(indices) if indices is not None else None)
    while True:
        ents = list(itertools.islice(its[0], RUN_CHUNK))
        chs = list(itertools.islice(its[1], RUN_CHUNK))
        idx = list(itertools.islice(its[2], RUN_CHUNK)) if its[2] is not None else None
        if not ents and not chs:
            return
        yield ents, chs, idx
