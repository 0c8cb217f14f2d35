"""The native verifier: :mod:`sealtrail_native` (built from ``native/``) does :meth:`LogAudit.feed
<sealtrail.core.audit.LogAudit.feed>`'s work for a whole chunk of entries per call.

It takes bundle lines and binary entry pages apart, checks indices, leaf hashes, the chain, the
tree against every checkpoint and each flat entry's payload digest, and gives back how many
payloads it found present and the few entries whose payload check needs the header parsed
(erasure and retention events, entries without a stored payload, nested objects), which
:meth:`~sealtrail.core.audit.LogAudit.resume` checks in Python. The pure Python verifier stays
the reference: a chunk the native code does not verify, for any reason, is fed to
:class:`~sealtrail.core.audit.LogAudit` unchanged (same chunks, same order), so every rejection is
the one the Python verifier raises, with the same message. A line not in the exporter's usual
form is parsed by Python (:func:`~sealtrail.audit.bundle.entry_of_line`) when it is reached.

Used when the module is importable and ``SEALTRAIL_NATIVE`` is not ``0``.
"""

from __future__ import annotations

import os
import tarfile
import zlib
from types import ModuleType
from typing import IO, Any

from sealtrail.audit import bundle
from sealtrail.audit.bundle import ENTRIES, entry_of_line
from sealtrail.core.audit import AuditEntry, LogAudit
from sealtrail.core.entrypage import decode_page
from sealtrail.core.verify import RunState
from sealtrail.errors import InvalidInputError

ENV = "SEALTRAIL_NATIVE"


def native_module() -> ModuleType | None:
    """:mod:`sealtrail_native` when it is importable and not turned off with ``SEALTRAIL_NATIVE=0``."""
    if os.environ.get(ENV, "").strip() == "0":
        return None
    try:
        import sealtrail_native
    except ImportError:
        return None
    return sealtrail_native


class NativeFeed:
    """Feeds one :class:`LogAudit` through the native module, from index :attr:`LogAudit.fed`."""

    def __init__(self, audit: LogAudit, module: ModuleType, *, chunk: int | None = None) -> None:
        self._audit = audit
        state = audit.run_state()
        self._pending = state.pending
        self._engine: Any = module.Engine(state.size, list(state.hashes), state.prev_chain,
                                          [(cp.size, cp.root) for cp in state.pending], state.good,
                                          state.matched, audit.size, chunk or bundle.CHUNK, bundle.MAX_LINE)

    def page(self, data: bytes) -> None:
        """Verify one binary entries page (the Python verifier's unit for ``verify --url``)."""
        out = self._engine.feed_page(data)
        if out is None:
            self._fallback(decode_page(data))
        else:
            self._adopt(*out)

    def entries_of(self, page: list[AuditEntry]) -> None:
        """Verify a page the server sent as JSON, already decoded (in Python, as it always was)."""
        self._fallback(page)

    def entries(self, file: IO[bytes]) -> None:
        """Verify ``entries.jsonl`` read from ``file``, in the Python reader's blocks and chunks."""
        engine = self._engine
        while True:
            try:
                block = file.read(bundle.BLOCK)
            except (EOFError, zlib.error, tarfile.TarError) as e:
                raise InvalidInputError(f"{ENTRIES} is cut short or corrupt after line {engine.lines_read}") from e
            if not block:
                engine.end()
                self._drain()
                return
            engine.push(block)
            self._drain()

    def _drain(self) -> None:
        engine = self._engine
        while (step := engine.step()) is not None:
            kind = step[0]
            if kind == "ok":
                self._adopt(step[1], step[2])
            elif kind == "odd":
                e = entry_of_line(step[2], step[1])
                engine.put(e.index, e.entry, e.chain, None if e.payload_digest is None else e.payload_digest.encode())
            elif kind == "entries":
                self._fallback([AuditEntry(*row) for row in step[1]])
            else:
                raise InvalidInputError(f"{ENTRIES} line {step[1]} is longer than {bundle.MAX_LINE} bytes")

    def _adopt(self, present: int, others: list[tuple[int, bytes, bytes, str | None]]) -> None:
        size, hashes, prev, consumed, good, matched = self._engine.state()
        state = RunState(size, tuple(hashes), prev, self._pending[consumed:], good, matched)
        self._audit.resume(state, present=present, others=[AuditEntry(*row) for row in others])

    def _fallback(self, entries: list[AuditEntry]) -> None:
        """Feed a chunk the native code did not verify to the Python verifier, then carry on from
        where it leaves the run."""
        self._audit.feed(entries)
        state = self._audit.run_state()
        self._engine.resync(state.size, list(state.hashes), state.prev_chain,
                            len(self._pending) - len(state.pending), state.good, state.matched)
