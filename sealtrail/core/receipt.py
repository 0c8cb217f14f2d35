"""Ingest receipts: a signed promise that an accepted event will appear in its log (DESIGN §5).

A receipt is a C2SP signed note (Ed25519, type 0x01) signed by the ingest service's key, whose
text is exactly five lines::

    sealtrail.dev/receipt/v1
    event <event_id>
    log <log id>
    digest <payload_digest>
    time <accepted time, Unix milliseconds>

Anyone holding the service's verifier key (``GET /v1/keys`` on ingest) can check it offline with
:func:`verify_receipt`. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from nacl.signing import SigningKey

from sealtrail.core.note import Ed25519Signer, NoteSignature, Verifier, open_note
from sealtrail.errors import NoteError

RECEIPT_ORIGIN = "sealtrail.dev/receipt/v1"
_TEXT = re.compile(
    r"^sealtrail\.dev/receipt/v1\nevent (?P<event_id>[0-9a-f-]{36})\nlog (?P<log>[a-z0-9][a-z0-9-]{0,62})\n"
    r"digest (?P<digest>blake3:[0-9a-f]{64})\ntime (?P<time_ms>0|[1-9][0-9]{0,15})\n$"
)


@dataclass(frozen=True, slots=True)
class Receipt:
    """What a receipt promises."""

    event_id: str
    log: str
    digest: str
    time_ms: int

    def text(self) -> str:
        """The note text that is signed."""
        return (f"{RECEIPT_ORIGIN}\nevent {self.event_id}\nlog {self.log}\n"
                f"digest {self.digest}\ntime {self.time_ms}\n")


def parse_receipt_text(text: str) -> Receipt:
    """Parse a receipt's note text; raise NoteError if it is not exactly the v1 form."""
    m = _TEXT.match(text)
    if m is None:
        raise NoteError("not a sealtrail receipt v1 text")
    return Receipt(m["event_id"], m["log"], m["digest"], int(m["time_ms"]))


def sign_receipt(receipt: Receipt, signer: Ed25519Signer | CachedEd25519Signer) -> str:
    """The signed note of ``receipt``: the same bytes as ``note.sign_note(receipt.text(), [signer])``.

    The text is valid note text by construction (every field matched its format), so the
    per-character checks of ``sign_note`` are skipped: ingest signs one receipt per event.
    """
    text = receipt.text()
    signature = NoteSignature(signer.name, signer.key_id, signer.sign(text.encode("ascii")))
    return text + "\n" + signature.line()


def verify_receipt(note: str | bytes, verifiers: Iterable[Verifier]) -> Receipt:
    """Check the signature against trusted keys and return what the receipt promises.

    Raises SignatureError when no trusted key signed it and NoteError when it is malformed.
    """
    return parse_receipt_text(open_note(note, verifiers).text)


class CachedEd25519Signer:
    """A :class:`~sealtrail.core.note.Signer` that derives the Ed25519 key pair once.

    :class:`~sealtrail.core.note.Ed25519Signer` rebuilds the key for every signature, which
    doubles the cost of signing one receipt per event; this wrapper signs the same bytes with the
    same key, so its signatures are identical.
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
