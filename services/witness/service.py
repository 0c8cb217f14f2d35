"""The witness: check an add-checkpoint request against the log's record, record it, cosign it.

The order is what makes the witness safe. The cosignature is computed, the new record (with the
cosigned note) is written by a compare-and-swap against the record the checks read, and only
then is the cosignature returned. A request that loses the race reads the new record and is
checked again (usually a 409); a crash before the write leaves no cosignature anywhere, and a
crash after it leaves a record the next request is checked against.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from sealtrail.core.cosignature import CosignatureSigner
from sealtrail.core.witness import (
    check_add_checkpoint,
    cosign,
    parse_add_checkpoint,
    recorded_note,
)
from sealtrail.errors import ConcurrentWriteError, SignatureError, VerificationError
from services.witness.ports import WitnessStore

log = logging.getLogger("sealtrail.witness")
MAX_ATTEMPTS = 8


def wall_clock() -> int:
    """Seconds since the epoch, the cosignature's timestamp."""
    return int(time.time())


@dataclass
class Witness:
    """A witness over one store, cosigning with one key."""

    store: WitnessStore
    signer: CosignatureSigner
    clock: Callable[[], int] = wall_clock

    async def add_checkpoint(self, body: bytes) -> str:
        """Handle one add-checkpoint body; return the cosignature line(s) or raise the refusal."""
        request = parse_add_checkpoint(body)
        for _ in range(MAX_ATTEMPTS):
            record = await self.store.get_log(request.origin)
            try:
                accepted = check_add_checkpoint(request, record)
            except VerificationError as e:
                if record is not None and not isinstance(e, SignatureError):
                    # A validly signed checkpoint that is not consistent: evidence of a misbehaving
                    # log (c2sp.org/tlog-witness allows keeping it). Checkpoints are public.
                    log.warning("refused an inconsistent checkpoint", extra={
                        "origin": request.origin, "size": request.checkpoint.size, "old_size": request.old_size,
                        "recorded_size": record.size, "reason": e.detail, "note": request.note.format()})
                raise
            assert record is not None  # check_add_checkpoint refuses an unknown log
            cosignature = cosign(accepted, self.signer, self.clock())
            cp = accepted.checkpoint
            if await self.store.advance(cp.origin, expected=record, size=cp.size, root=cp.root,
                                        note=recorded_note(accepted, cosignature)):
                log.info("cosigned checkpoint", extra={"origin": cp.origin, "size": cp.size,
                                                       "old_size": record.size})
                return cosignature.line()
        raise ConcurrentWriteError(f"log {request.origin!r} kept moving during {MAX_ATTEMPTS} attempts")

    async def latest(self, origin_hash: str) -> str | None:
        """The latest cosigned note of the log whose origin hashes (SHA-256, lowercase hex) to ``origin_hash``."""
        for record in await self.store.list_logs():
            if hashlib.sha256(record.origin.encode("utf-8")).hexdigest() == origin_hash:
                return record.note
        return None
