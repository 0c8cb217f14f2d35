"""Ingest receipts: a signed promise that an accepted event will appear in its log (DESIGN §5).

Ingest signs once per batch. The accepted events of a batch are the leaves of an RFC 6962
Merkle tree (SHA-256, :mod:`sealtrail.core.merkle`), in batch order; the leaf data of one event
is the ASCII text::

    event <event_id>
    digest <payload_digest>

(each line ending in a newline) and its leaf hash is ``SHA-256(0x00 || leaf data)``. The batch
note is a C2SP signed note (Ed25519, type 0x01) by the ingest receipt key whose text is exactly::

    sealtrail.dev/receipt/v2
    log <log id>
    time <accepted time, Unix milliseconds>
    size <number of leaves N, at least 1>
    <"root " + base64 of the RFC 6962 root of the N leaf hashes>

One event's receipt (what ``accepted[i].receipt`` carries) is self-contained, in the manner of
``c2sp.org/tlog-proof``::

    sealtrail.dev/receipt-proof/v2
    event <event_id>
    digest <payload_digest>
    index <leaf index, ASCII decimal, no leading zeroes>
    <base64 proof hash, the leaf's sibling first>   (zero or more lines)
    <empty line>
    <the signed batch note, verbatim>

A batch of one event has an empty proof. Anyone holding the service's verifier key
(``GET /v1/keys`` on ingest) checks a receipt offline with :func:`verify_receipt`: the note's
signature, then the inclusion of the event's leaf under the note's root and size.

Receipts of the earlier single-event form stay verifiable: a C2SP signed note whose text is
exactly ``sealtrail.dev/receipt/v1``, ``event <event_id>``, ``log <log id>``,
``digest <payload_digest>``, ``time <Unix ms>``, one line each. Pure: no I/O.
"""

from __future__ import annotations

import re
from binascii import b2a_base64
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from nacl.signing import SigningKey

from sealtrail.core.fields import EVENT_ID_PATTERN
from sealtrail.core.merkle import leaf_hash, leaf_hashes, node_hash, verify_inclusion
from sealtrail.core.note import (
    Ed25519Signer,
    NoteSignature,
    Signer,
    Verifier,
    b64decode,
    b64encode,
    open_note,
    parse_note,
    sign_note,
)
from sealtrail.errors import InvalidInputError, NoteError

RECEIPT_ORIGIN = "sealtrail.dev/receipt/v1"
"""First line of a single-event (v1) receipt note."""
BATCH_ORIGIN = "sealtrail.dev/receipt/v2"
"""First line of the note text ingest signs once per batch."""
RECEIPT_FORMAT = "sealtrail.dev/receipt-proof/v2"
"""First line of every receipt ingest gives out; published as ``receipt_format`` by ``GET /v1/keys``."""
MAX_PROOF_HASHES = 63
"""Longest inclusion proof accepted: a batch never holds 2**63 events."""

_EVENT_ID = EVENT_ID_PATTERN.removeprefix("^").removesuffix("$")
_LOG = r"[a-z0-9][a-z0-9-]{0,62}"
_DIGEST = r"blake3:[0-9a-f]{64}"
_TIME = r"0|[1-9][0-9]{0,15}"
_HASH_B64 = r"[A-Za-z0-9+/]{43}="  # 32 bytes
_EVENT_ID_RE = re.compile(_EVENT_ID + r"\Z", re.ASCII)
_DIGEST_RE = re.compile(_DIGEST + r"\Z", re.ASCII)
_LOG_RE = re.compile(_LOG + r"\Z", re.ASCII)
_V1_TEXT = re.compile(
    rf"sealtrail\.dev/receipt/v1\nevent (?P<event_id>[0-9a-f-]{{36}})\nlog (?P<log>{_LOG})\n"
    rf"digest (?P<digest>{_DIGEST})\ntime (?P<time_ms>{_TIME})\n\Z", re.ASCII,
)
_BATCH_TEXT = re.compile(
    rf"sealtrail\.dev/receipt/v2\nlog (?P<log>{_LOG})\ntime (?P<time_ms>{_TIME})\n"
    rf"size (?P<size>[1-9][0-9]{{0,18}})\nroot (?P<root>{_HASH_B64})\n\Z", re.ASCII,
)
_PROOF_HEAD = re.compile(
    rf"sealtrail\.dev/receipt-proof/v2\nevent (?P<event_id>{_EVENT_ID})\ndigest (?P<digest>{_DIGEST})\n"
    rf"index (?P<index>0|[1-9][0-9]{{0,18}})\n(?P<proof>(?:{_HASH_B64}\n){{0,{MAX_PROOF_HASHES}}})\n",
    re.ASCII,
)


@dataclass(frozen=True, slots=True)
class Receipt:
    """What a receipt promises."""

    event_id: str
    log: str
    digest: str
    time_ms: int

    def text(self) -> str:
        """The note text of a single-event (v1) receipt."""
        return (f"{RECEIPT_ORIGIN}\nevent {self.event_id}\nlog {self.log}\n"
                f"digest {self.digest}\ntime {self.time_ms}\n")


@dataclass(frozen=True, slots=True)
class BatchHead:
    """What a batch note commits to: the log, the accepted time and the tree of the batch's leaves."""

    log: str
    time_ms: int
    size: int
    root: bytes

    def text(self) -> str:
        """The note text that is signed once per batch."""
        return (f"{BATCH_ORIGIN}\nlog {self.log}\ntime {self.time_ms}\n"
                f"size {self.size}\nroot {b64encode(self.root)}\n")


@dataclass(frozen=True, slots=True)
class ReceiptProof:
    """A parsed (not yet verified) v2 receipt."""

    event_id: str
    digest: str
    index: int
    proof: tuple[bytes, ...]
    note: str


def leaf_data(event_id: str, digest: str) -> bytes:
    """The leaf data of one event in its batch's receipt tree."""
    return f"event {event_id}\ndigest {digest}\n".encode("ascii")


# --- signing -----------------------------------------------------------------------------------


def _tree_levels(leaves: list[bytes]) -> list[list[bytes]]:
    """Every level of the RFC 6962 tree over ``leaves``, leaves first, the root alone last.

    Adjacent pairs are hashed and a trailing odd node moves up unchanged, which is the RFC's
    split at the largest power of two (as :func:`sealtrail.core.merkle.root_of` does).
    """
    levels = [leaves]
    level = leaves
    while len(level) > 1:
        it = iter(level)
        up = [node_hash(a, b) for a, b in zip(it, it, strict=False)]
        if len(level) % 2:
            up.append(level[-1])
        levels.append(up)
        level = up
    return levels


def _proofs(levels: list[list[bytes]]) -> list[str]:
    """The proof of every leaf as base64 lines, from the tree levels: one concatenation per node.

    A leaf's proof is its sibling (if it has one: a trailing odd node has none and moves up
    unchanged), then its parent's proof; so the proofs are built from the root down.
    """
    above = [""]
    for level in reversed(levels[:-1]):
        lines = [b2a_base64(h).decode("ascii") for h in level]
        n = len(lines)
        above = [(lines[i ^ 1] if i ^ 1 < n else "") + above[i >> 1] for i in range(n)]
    return above


def sign_receipts(log: str, time_ms: int, events: Sequence[tuple[str, str]], signer: Signer) -> list[str]:
    """The receipt of each ``(event_id, payload_digest)`` of a batch, in order, under one signature.

    Builds the batch's tree once, signs its note once and formats every receipt from the kept
    tree levels. Raises :class:`InvalidInputError` when the log, the time, an event id or a digest
    is not in its published form (they are written into the receipt text as they are).
    """
    if not events:
        return []
    if not _LOG_RE.match(log) or not 0 <= time_ms < 10**16:
        raise InvalidInputError("a receipt needs a log id and a Unix millisecond time")
    event_id_ok, digest_ok = _EVENT_ID_RE.match, _DIGEST_RE.match
    if not all(event_id_ok(e) and digest_ok(d) for e, d in events):
        raise InvalidInputError("a receipt needs a lowercase UUIDv7 event id and a blake3 digest")
    levels = _tree_levels(leaf_hashes(leaf_data(e, d) for e, d in events))
    note = sign_note(BatchHead(log, time_ms, len(events), levels[-1][0]).text(), [signer])
    tail = "\n" + note
    return [
        f"{RECEIPT_FORMAT}\nevent {event_id}\ndigest {digest}\nindex {i}\n{proof}{tail}"
        for i, ((event_id, digest), proof) in enumerate(zip(events, _proofs(levels), strict=True))
    ]


def sign_receipt(receipt: Receipt, signer: Signer) -> str:
    """The single-event (v1) receipt note: the same bytes as ``note.sign_note(receipt.text(), [signer])``.

    Ingest no longer gives these out (it signs batches, :func:`sign_receipts`); this stays so that
    v1 receipts can be made for tests and tools.
    """
    text = receipt.text()
    signature = NoteSignature(signer.name, signer.key_id, signer.sign(text.encode("ascii")))
    return text + "\n" + signature.line()


# --- parsing and verifying ---------------------------------------------------------------------


def parse_receipt_text(text: str) -> Receipt:
    """Parse a v1 receipt's note text; raise NoteError if it is not exactly the v1 form."""
    m = _V1_TEXT.match(text)
    if m is None:
        raise NoteError("not a sealtrail receipt v1 text")
    return Receipt(m["event_id"], m["log"], m["digest"], int(m["time_ms"]))


def parse_batch_text(text: str) -> BatchHead:
    """Parse a batch note's text; raise NoteError if it is not exactly the v2 form."""
    m = _BATCH_TEXT.match(text)
    if m is None:
        raise NoteError("not a sealtrail receipt v2 batch text")
    return BatchHead(m["log"], int(m["time_ms"]), int(m["size"]), b64decode(m["root"], "receipt root"))


def parse_receipt_proof(data: str | bytes) -> ReceiptProof:
    """Parse a v2 receipt (signatures NOT checked); raise NoteError if anything is malformed."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise NoteError("receipt is not valid UTF-8") from e
    m = _PROOF_HEAD.match(data)
    if m is None:
        raise NoteError("not a sealtrail receipt v2")
    proof = tuple(b64decode(line, "proof hash") for line in m["proof"].split("\n")[:-1])
    note = data[m.end():]
    parse_batch_text(parse_note(note).text)
    return ReceiptProof(m["event_id"], m["digest"], int(m["index"]), proof, note)


def verify_receipt(receipt: str | bytes, verifiers: Iterable[Verifier]) -> Receipt:
    """Check a receipt against trusted keys and return what it promises.

    Accepts the batch form (v2) and the single-event note (v1). Raises :class:`NoteError` when it
    is malformed, :class:`SignatureError` when no trusted key signed it (or a trusted key's
    signature fails) and :class:`InvalidProofError` when the event is not the leaf at its index
    under the signed root and size.
    """
    head = receipt[: len(RECEIPT_FORMAT)]
    if head not in (RECEIPT_FORMAT, RECEIPT_FORMAT.encode("ascii")):
        return parse_receipt_text(open_note(receipt, verifiers).text)
    parsed = parse_receipt_proof(receipt)
    batch = parse_batch_text(open_note(parsed.note, verifiers).text)
    leaf = leaf_hash(leaf_data(parsed.event_id, parsed.digest))
    verify_inclusion(leaf, parsed.index, batch.size, parsed.proof, batch.root)
    return Receipt(parsed.event_id, batch.log, parsed.digest, batch.time_ms)


class CachedEd25519Signer:
    """A :class:`~sealtrail.core.note.Signer` that derives the Ed25519 key pair once.

    :class:`~sealtrail.core.note.Ed25519Signer` rebuilds the key for every signature; this
    wrapper signs the same bytes with the same key, so its signatures are identical.
    """

    __slots__ = ("_key", "_signer", "key_id", "name")

    def __init__(self, signer: Ed25519Signer) -> None:
        self._signer = signer
        self._key = SigningKey(signer.seed)
        self.name = signer.name
        self.key_id = signer.key_id

    def __repr__(self) -> str:
        return f"CachedEd25519Signer(name={self.name!r})"

    def sign(self, text: bytes) -> bytes:
        return bytes(self._key.sign(text).signature)

    def vkey(self) -> str:
        return self._signer.verifier().vkey()

