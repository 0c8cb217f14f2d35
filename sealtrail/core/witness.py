"""The witness side of c2sp.org/tlog-witness, pure: read an ``add-checkpoint`` body, decide, cosign.

A request body is an old size line, zero to 63 consistency proof lines, an empty line and a
signed checkpoint note::

    old <size, ASCII decimal, no leading zeroes>
    <base64 hash>                               (zero or more)
    <empty line>
    <signed checkpoint note>

:func:`check_add_checkpoint` applies the spec's checks in its order against the witness's record
of one log (its log keys and the latest size and root it cosigned). Each refusal raises the error
whose tlog-witness status the HTTP edge answers with:

* malformed body, or an old size above the checkpoint's size: :class:`InvalidInputError` (400);
* unknown origin: :class:`NotFoundError` (404);
* no valid signature by a log key, or a log key's line that fails: :class:`SignatureError` (403);
* old size other than the recorded size: :class:`WitnessSizeError` carrying it (409);
* a bad proof, a fork at the same size or a non-empty root at size 0: :class:`InvalidProofError` (422).

A witness MUST record the accepted checkpoint (compare-and-swap against the record it checked)
before it returns the cosignature, so that it never cosigns two inconsistent checkpoints.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sealtrail.core.checkpoint import Checkpoint, parse_checkpoint, parse_decimal
from sealtrail.core.cosignature import MAX_TIMESTAMP, CosignatureSigner
from sealtrail.core.merkle import HASH_SIZE, empty_root, verify_consistency
from sealtrail.core.note import (
    Ed25519Verifier,
    Note,
    NoteSignature,
    b64decode,
    b64encode,
    open_note,
    parse_note,
)
from sealtrail.errors import (
    InvalidInputError,
    InvalidProofError,
    NoteError,
    NotFoundError,
    WitnessSizeError,
)

MAX_PROOF_LINES = 63
MAX_BODY_BYTES = 64 * 1024
SIZE_MEDIA_TYPE = "text/x.tlog.size"


@dataclass(frozen=True)
class AddCheckpoint:
    """A parsed add-checkpoint request: the old size, the consistency proof, the signed note."""

    old_size: int
    proof: tuple[bytes, ...]
    note: Note
    checkpoint: Checkpoint

    @property
    def origin(self) -> str:
        """The origin line of the submitted checkpoint."""
        return self.checkpoint.origin


@dataclass(frozen=True)
class LogRecord:
    """What a witness keeps about one log: its keys and the latest checkpoint it cosigned.

    ``size`` is 0 and ``root`` the empty tree's root until the first cosignature. ``note`` is that
    latest checkpoint with the log's verified signatures and the witness's cosignature.
    """

    origin: str
    vkeys: tuple[str, ...]
    size: int = 0
    root: bytes = b""
    note: str | None = None

    def latest_root(self) -> bytes:
        """The recorded root, or the empty tree's root when nothing was cosigned yet."""
        return self.root or empty_root()

    def verifiers(self) -> list[Ed25519Verifier]:
        """The log's checkpoint keys (Ed25519, type 0x01)."""
        return [Ed25519Verifier.from_vkey(v) for v in self.vkeys]


@dataclass(frozen=True)
class Accepted:
    """A checkpoint that passed every check: what the witness records, then cosigns."""

    checkpoint: Checkpoint
    text: str
    log_signatures: tuple[NoteSignature, ...]


# --- the request body --------------------------------------------------------------------------


def _decode(body: bytes) -> str:
    if len(body) > MAX_BODY_BYTES:
        raise InvalidInputError(f"request body is larger than {MAX_BODY_BYTES} bytes")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InvalidInputError("request body is not valid UTF-8") from e


def parse_add_checkpoint(body: bytes) -> AddCheckpoint:
    """Parse an add-checkpoint body; anything malformed raises :class:`InvalidInputError` (400)."""
    text = _decode(body)
    head, sep, note_text = text.partition("\n\n")
    if not sep:
        raise InvalidInputError("request body has no empty line before the checkpoint")
    lines = head.split("\n")
    if not lines[0].startswith("old "):
        raise InvalidInputError("request body must start with an 'old <size>' line")
    proof_lines = lines[1:]
    if len(proof_lines) > MAX_PROOF_LINES:
        raise InvalidInputError(f"more than {MAX_PROOF_LINES} consistency proof lines")
    try:
        old_size = parse_decimal(lines[0][4:], "old size")
        proof = tuple(_hash_line(line, n) for n, line in enumerate(proof_lines, start=2))
        note = parse_note(note_text)
        checkpoint = parse_checkpoint(note.text)
    except NoteError as e:
        raise InvalidInputError(str(e)) from e
    return AddCheckpoint(old_size, proof, note, checkpoint)


def _hash_line(line: str, number: int) -> bytes:
    raw = b64decode(line, f"consistency proof line {number}")
    if len(raw) != HASH_SIZE:
        raise NoteError(f"consistency proof line {number} is not a 32-byte hash")
    return raw


def format_add_checkpoint(old_size: int, proof: Sequence[bytes], note: str) -> bytes:
    """Return an add-checkpoint request body (the client side)."""
    if len(proof) > MAX_PROOF_LINES or any(len(h) != HASH_SIZE for h in proof):
        raise NoteError(f"a consistency proof holds at most {MAX_PROOF_LINES} hashes of 32 bytes")
    lines = [f"old {old_size}", *(b64encode(h) for h in proof)]
    return ("\n".join(lines) + "\n\n" + note).encode("utf-8")


# --- the checks --------------------------------------------------------------------------------


def check_add_checkpoint(request: AddCheckpoint, record: LogRecord | None) -> Accepted:
    """Apply tlog-witness's checks to ``request`` against the witness's ``record`` of its log.

    ``record`` is None when the witness does not know the origin. Returns what to record and
    cosign; raises as the module doc lists otherwise. Pure: the caller MUST then record the
    result with a compare-and-swap against exactly ``record.size`` and ``record.root``.
    """
    if record is None:
        raise NotFoundError(f"unknown log origin {request.origin!r}")
    verified = open_note(request.note, record.verifiers())  # raises SignatureError (403)
    cp = request.checkpoint
    if request.old_size > cp.size:
        raise InvalidInputError(f"old size {request.old_size} is larger than the checkpoint's size {cp.size}")
    if request.old_size != record.size:
        raise WitnessSizeError(f"the latest cosigned size is {record.size}, not {request.old_size}",
                               size=record.size)
    if cp.size == 0 and cp.root != empty_root():
        raise InvalidProofError("a checkpoint of size 0 must carry the empty tree's root")
    if record.size == 0:
        if request.proof:
            raise InvalidProofError("a consistency proof from size 0 must be empty")
    elif record.size == cp.size and record.root != cp.root:
        raise InvalidProofError(f"a checkpoint of size {cp.size} with another root was cosigned before")
    else:
        verify_consistency(record.size, cp.size, request.proof, record.root, cp.root)
    return Accepted(cp, request.note.text, verified.verified)


# --- cosigning ---------------------------------------------------------------------------------


def cosign(accepted: Accepted, signer: CosignatureSigner, timestamp: int) -> NoteSignature:
    """Return the witness's timestamped cosignature (type 0x04) on the accepted checkpoint."""
    if not 0 < timestamp <= MAX_TIMESTAMP:
        raise NoteError("a witness cosignature needs a non-zero timestamp")
    text = accepted.text.encode("utf-8")
    return NoteSignature(signer.name, signer.key_id, signer.sign_at(text, timestamp))


def recorded_note(accepted: Accepted, cosignature: NoteSignature) -> str:
    """The note a witness records and serves: the log's verified signatures and its cosignature."""
    return Note(accepted.text, (*accepted.log_signatures, cosignature)).format()

