"""Submitting a log's checkpoints to witnesses over c2sp.org/tlog-witness (httpx).

- :class:`WitnessClient` sends one checkpoint to one witness: ``old <size>`` (the size the witness
  last cosigned, learned from its 409 answers), the RFC 6962 consistency proof from that size, and
  the signed checkpoint. A 200 answer is kept only once its cosignature verifies under the
  witness's vkey. Each refusal is a Sealtrail error: 404 :class:`NotFoundError` (the witness does
  not know the log), 403 :class:`PermissionDeniedError` (it does not trust the log's key), 422
  :class:`InconsistentCheckpointError` (it holds a checkpoint this one does not extend), 400
  :class:`InvalidInputError`, and timeouts, connection errors and other statuses
  :class:`UnavailableError`. A garbage or wrongly signed 200 is a :class:`SignatureError`.
- :class:`WitnessLoop` submits every offered checkpoint to every witness in the background, in
  order of size, each witness on its own task with exponential backoff after a failure, so each
  checkpoint the log signs can reach the quorum. A witness that failed, or fell more than
  :data:`MAX_BEHIND` checkpoints behind, goes straight to the latest one (witnesses never cosign a
  smaller size after a larger one, so it could not catch up otherwise). Offering a checkpoint never
  waits (the log's own signing is never blocked by a witness), and a witness that is down, slow or
  answering garbage delays only its own cosignatures. A checkpoint smaller than the latest offered,
  or of its size with another body (a log rolled back or forked), starts a new history: it is
  submitted all the same, so every witness refuses it, and the lag counts from it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import httpx

from sealtrail.core.note import NoteSignature
from sealtrail.core.witness import format_add_checkpoint
from sealtrail.core.witnessing import WitnessConfig, backoff_seconds, read_cosignature, read_size
from sealtrail.errors import (
    InconsistentCheckpointError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    SealtrailError,
    UnavailableError,
)

log = logging.getLogger("sealtrail.witnessing")

ProofSource = Callable[[int, int], Awaitable[Sequence[bytes]]]
"""``proof(old, new)``: the RFC 6962 consistency proof from tree size ``old`` to ``new`` (0 < old < new)."""
CosignatureSink = Callable[[str, int, NoteSignature], Awaitable[None]]
"""``sink(witness name, tree size, cosignature)``: keeps a verified cosignature (e.g. in the database)."""

DEFAULT_TIMEOUT_S = 10.0
MAX_CONFLICTS = 3
MAX_BEHIND = 16
"""A witness this many offered checkpoints behind skips to the latest one."""
MAX_PENDING = 256
"""Offered checkpoints kept for witnesses still to cosign them (the oldest are dropped first)."""


class WitnessClient:
    """Submits checkpoints of one log to one witness, remembering the witness's latest size."""

    def __init__(self, config: WitnessConfig, *, http: httpx.AsyncClient, timeout_s: float = DEFAULT_TIMEOUT_S,
                 known_size: int = 0) -> None:
        self.config = config
        self.known_size = known_size
        self._http = http
        self._timeout_s = timeout_s

    async def add_checkpoint(self, note: str, size: int, proof: ProofSource) -> NoteSignature:
        """The witness's verified cosignature on ``note`` (of tree ``size``), or raise (see the module doc)."""
        asked_smaller = False
        for _ in range(MAX_CONFLICTS):
            old = self.known_size
            if old > size:  # a rolled-back log: the witness answers for itself (409 with its size)
                if asked_smaller:
                    raise InconsistentCheckpointError(
                        f"witness {self.config.name} cosigned tree size {old}, beyond this checkpoint's {size}")
                asked_smaller, old = True, 0
            hashes = await proof(old, size) if 0 < old < size else []
            response = await self._post(format_add_checkpoint(old, hashes, note))
            if response.status_code == 200:
                cosignature = read_cosignature(note, response.content, self.config.verifier)
                self.known_size = size
                return cosignature
            if response.status_code != 409:
                raise _refusal(self.config.name, response.status_code)
            self.known_size = read_size(response.content)
            if self.known_size > size:
                raise InconsistentCheckpointError(f"witness {self.config.name} refused the checkpoint of tree size"
                                                  f" {size}: it cosigned size {self.known_size} (409)")
        raise UnavailableError(f"witness {self.config.name} kept answering 409", retry_after=1.0)

    async def _post(self, body: bytes) -> httpx.Response:
        try:
            return await self._http.post(self.config.url + "/add-checkpoint", content=body,
                                         timeout=self._timeout_s)
        except httpx.TimeoutException as e:
            raise UnavailableError(f"witness {self.config.name} timed out") from e
        except httpx.HTTPError as e:
            raise UnavailableError(f"witness {self.config.name} unreachable: {type(e).__name__}") from e


def _refusal(name: str, status: int) -> SealtrailError:
    if status == 404:
        return NotFoundError(f"witness {name} does not know this log (404)")
    if status == 403:
        return PermissionDeniedError(f"witness {name} does not accept the log's signature (403)")
    if status == 422:
        return InconsistentCheckpointError(f"witness {name} refused the checkpoint as inconsistent (422)")
    if status == 400:
        return InvalidInputError(f"witness {name} refused the request as malformed (400)")
    return UnavailableError(f"witness {name} answered {status}")


def _body(note: str) -> str:
    """A note's signed text (what a rollback or fork changes), without its signature lines."""
    return note.split("\n\n", 1)[0]


@dataclass
class _Progress:
    cosigned: int = 0
    failures: int = 0
    last_error: str = ""
    generation: int = 0


@dataclass
class WitnessLoop:
    """Keeps each witness cosigning every offered checkpoint, in order (see the module doc).

    ``quorum`` witnesses cosigning a checkpoint make it witnessed; :attr:`witnessed_size` is the
    largest such size and :meth:`lag` how far it trails the latest offered checkpoint.
    """

    clients: Sequence[WitnessClient]
    proof: ProofSource
    sink: CosignatureSink
    quorum: int
    clock: Callable[[], float] = time.monotonic
    retry_max_s: float = 60.0
    witnessed_size: int = 0
    _latest: tuple[str, int] | None = None
    _pending: dict[int, str] = field(default_factory=dict)
    _offered_at: dict[int, float] = field(default_factory=dict)
    _cosigners: dict[int, set[str]] = field(default_factory=dict)
    _progress: dict[str, _Progress] = field(default_factory=dict)
    _wake: dict[str, asyncio.Event] = field(default_factory=dict)
    _generation: int = 0

    def offer(self, note: str, size: int) -> None:
        """Hand the latest signed checkpoint to every witness's task; returns at once.

        A checkpoint of a smaller size than the latest offered, or of the same size with another
        body, starts a new history (the log rolled back or forked): it is submitted all the same,
        so every witness gets to refuse it, and the lag counts from it."""
        if self._latest is not None and size <= self._latest[1]:
            if size == self._latest[1] and _body(note) == _body(self._latest[0]):
                return
            self._generation += 1
            self.witnessed_size = 0
            self._pending.clear()
            self._offered_at.clear()
            self._cosigners.clear()
        self._latest = (note, size)
        self._pending[size] = note
        while len(self._pending) > MAX_PENDING:
            del self._pending[min(self._pending)]
        self._offered_at.setdefault(size, self.clock())
        for event in self._wake.values():
            event.set()

    def lag(self) -> tuple[int, float]:
        """(entries, seconds) by which the latest witnessed checkpoint trails the latest offered one."""
        if self._latest is None or self._latest[1] <= self.witnessed_size:
            return 0, 0.0
        waiting = [t for s, t in self._offered_at.items() if s > self.witnessed_size]
        return self._latest[1] - self.witnessed_size, self.clock() - min(waiting)

    def status(self) -> dict[str, dict[str, object]]:
        """Per witness: the latest size it cosigned, failures in a row, the last error."""
        return {c.config.name: {"cosigned": p.cosigned, "failures": p.failures, "last_error": p.last_error}
                for c in self.clients for p in [self._progress.setdefault(c.config.name, _Progress())]}

    async def run(self) -> None:
        """Run every witness's task until cancelled."""
        await asyncio.gather(*(self._follow(c) for c in self.clients))

    async def _follow(self, client: WitnessClient) -> None:
        name = client.config.name
        wake = self._wake.setdefault(name, asyncio.Event())
        progress = self._progress.setdefault(name, _Progress())
        while True:
            if self._latest is None or (self._latest[1] <= progress.cosigned
                                        and progress.generation == self._generation):
                wake.clear()
                await wake.wait()
                continue
            note, size = self._next(progress)
            generation = self._generation
            try:
                cosignature = await client.add_checkpoint(note, size, self.proof)
            except Exception as e:  # whatever one witness does, the other witnesses and the log go on
                progress.failures += 1
                progress.last_error = str(e) if isinstance(e, SealtrailError) else f"unexpected {type(e).__name__}"
                delay = backoff_seconds(progress.failures - 1, cap=self.retry_max_s)
                log.warning("witness refused or failed", extra={"witness": name, "size": size,
                                                                "reason": progress.last_error, "retry_in_s": delay})
                await asyncio.sleep(delay)
                continue
            progress.failures, progress.last_error, progress.cosigned = 0, "", size
            progress.generation = generation
            if generation != self._generation:  # a history the log has since abandoned: the stored
                continue                         # checkpoint of that size may now be another one
            await self.sink(name, size, cosignature)
            self._count(name, size)
            self._prune()

    def _next(self, progress: _Progress) -> tuple[str, int]:
        """The checkpoint a witness is asked to cosign next: the smallest offered one above what it
        cosigned, or the latest after a failure or when it is too far behind."""
        assert self._latest is not None
        waiting = sorted(s for s in self._pending if s > progress.cosigned)
        if progress.failures or not waiting or len(waiting) > MAX_BEHIND:
            return self._latest
        return self._pending[waiting[0]], waiting[0]

    def _prune(self) -> None:
        """Forget offered checkpoints every witness has cosigned or gone past."""
        if len(self._progress) < len(self.clients):
            return
        floor = min(p.cosigned for p in self._progress.values())
        for size in [s for s in self._pending if s <= floor and (self._latest is None or s < self._latest[1])]:
            del self._pending[size]

    def _count(self, name: str, size: int) -> None:
        cosigners = self._cosigners.setdefault(size, set())
        cosigners.add(name)
        if len(cosigners) >= self.quorum and size > self.witnessed_size:
            self.witnessed_size = size
            for old in [s for s in self._offered_at if s <= size]:
                del self._offered_at[old]
            for old in [s for s in self._cosigners if s < size]:
                del self._cosigners[old]
