"""Erasure receipts and the keyed hash that keeps erasure history findable (DESIGN §4).

An erasure receipt is a C2SP signed note (Ed25519, type 0x01) signed by the query service's key,
whose text is exactly ten lines::

    sealtrail.dev/erasure-receipt/v1
    tenant <tenant id>
    request <request reference>
    basis <legal basis code>
    event <event id of the erasure event appended to the tenant's log>
    keys <erased key ids, comma-separated, or "-" when the subject had no key>
    payloads <ciphertexts deleted>
    index-rows <subject-index rows deleted>
    erased <erasure time, Unix milliseconds>
    clear-by <time after which no key cache can still hold an erased key, Unix milliseconds>

It holds identifiers and counts only, never the subject id. Anyone holding the query service's
verifier key (``GET /v1/keys``, purpose ``erasure-receipt``) can check it offline with
:func:`verify_erasure_receipt`.

``history_ref`` is how erasure history and legal holds are found again after the subject's key
is gone: ``BLAKE3(key = BLAKE3.derive_key("sealtrail subject history v1", tenant index key),
UTF-8 of the normalised subject id)``. It is deliberately not ``subject_ref``: nothing in the key
store or the subject index carries it, so it joins no key row. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import blake3

from sealtrail.core.events import normalise_subject
from sealtrail.core.note import Signer, Verifier, open_note, sign_note
from sealtrail.errors import InvalidInputError, NoteError

ERASURE_RECEIPT_ORIGIN = "sealtrail.dev/erasure-receipt/v1"
HISTORY_CONTEXT = "sealtrail subject history v1"
REQUEST_REF_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/#-]{0,127}$"
"""Request references are ticket-like identifiers, never free text (they go into the log)."""

_REQUEST_REF = re.compile(REQUEST_REF_PATTERN)
_TEXT = re.compile(
    r"^sealtrail\.dev/erasure-receipt/v1\n"
    r"tenant (?P<tenant>[a-z0-9][a-z0-9-]{0,62})\n"
    r"request (?P<request>[A-Za-z0-9][A-Za-z0-9._:/#-]{0,127})\n"
    r"basis (?P<basis>[a-z][a-z0-9_.-]{0,63})\n"
    r"event (?P<event>[0-9a-f-]{36})\n"
    r"keys (?P<keys>-|[0-9a-f]{32}(,[0-9a-f]{32})*)\n"
    r"payloads (?P<payloads>0|[1-9][0-9]{0,15})\n"
    r"index-rows (?P<rows>0|[1-9][0-9]{0,15})\n"
    r"erased (?P<erased>0|[1-9][0-9]{0,15})\n"
    r"clear-by (?P<clear>0|[1-9][0-9]{0,15})\n$"
)


def check_request_ref(request_ref: str) -> str:
    """Return ``request_ref`` if it is an identifier (see :data:`REQUEST_REF_PATTERN`)."""
    if not isinstance(request_ref, str) or not _REQUEST_REF.fullmatch(request_ref):
        raise InvalidInputError("request_ref must be 1-128 of [A-Za-z0-9._:/#-], starting with a letter "
                                "or digit", pointer="/request_ref")
    return request_ref


def history_ref(tenant_index_key: bytes, subject_id: str) -> bytes:
    """The keyed hash under which a subject's erasures and legal holds are kept (32 bytes)."""
    if len(tenant_index_key) != 32:
        raise InvalidInputError("a tenant index key must be 32 bytes")
    key = blake3.blake3(tenant_index_key, derive_key_context=HISTORY_CONTEXT).digest()
    return blake3.blake3(normalise_subject(subject_id).encode("utf-8"), key=key).digest()


@dataclass(frozen=True, slots=True)
class ErasureReceipt:
    """What an erasure receipt attests."""

    tenant: str
    request_ref: str
    legal_basis: str
    event_id: str
    erased_key_ids: tuple[str, ...]
    payloads_deleted: int
    index_rows_deleted: int
    erased_ms: int
    clear_by_ms: int

    def text(self) -> str:
        """The note text that is signed."""
        keys = ",".join(self.erased_key_ids) or "-"
        text = (f"{ERASURE_RECEIPT_ORIGIN}\ntenant {self.tenant}\nrequest {self.request_ref}\n"
                f"basis {self.legal_basis}\nevent {self.event_id}\nkeys {keys}\n"
                f"payloads {self.payloads_deleted}\nindex-rows {self.index_rows_deleted}\n"
                f"erased {self.erased_ms}\nclear-by {self.clear_by_ms}\n")
        if _TEXT.match(text) is None:
            raise NoteError("erasure receipt fields do not fit the v1 text")
        return text


def parse_erasure_receipt_text(text: str) -> ErasureReceipt:
    """Parse a receipt's note text; raise NoteError unless it is exactly the v1 form."""
    m = _TEXT.match(text)
    if m is None:
        raise NoteError("not a sealtrail erasure receipt v1 text")
    keys = () if m["keys"] == "-" else tuple(m["keys"].split(","))
    return ErasureReceipt(m["tenant"], m["request"], m["basis"], m["event"], keys, int(m["payloads"]),
                          int(m["rows"]), int(m["erased"]), int(m["clear"]))


def sign_erasure_receipt(receipt: ErasureReceipt, signer: Signer) -> str:
    """The signed note of ``receipt``."""
    return sign_note(receipt.text(), [signer])


def verify_erasure_receipt(note: str | bytes, verifiers: Iterable[Verifier]) -> ErasureReceipt:
    """Check the signature against trusted keys and return what the receipt attests."""
    return parse_erasure_receipt_text(open_note(note, verifiers).text)
