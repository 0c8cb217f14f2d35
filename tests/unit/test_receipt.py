"""Ingest receipts: one signed note per batch, one inclusion proof per event; tampering is detected."""

from __future__ import annotations

import base64
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sealtrail.core.merkle import CompactRange, MemoryNodeStore, inclusion_proof, leaf_hash, root_of
from sealtrail.core.note import Ed25519Signer, Ed25519Verifier, parse_note, sign_note
from sealtrail.core.receipt import (
    BATCH_ORIGIN,
    RECEIPT_FORMAT,
    CachedEd25519Signer,
    Receipt,
    leaf_data,
    parse_batch_text,
    parse_receipt_proof,
    parse_receipt_text,
    sign_receipt,
    sign_receipts,
    verify_receipt,
)
from sealtrail.errors import InvalidInputError, InvalidProofError, NoteError, SignatureError, VerificationError

SIGNER = Ed25519Signer.generate("sealtrail-ingest")
VERIFIERS = [Ed25519Verifier.from_vkey(SIGNER.verifier().vkey())]
TIME_MS = 1700000000123
RECEIPT = Receipt("0190f0e8-1234-7abc-8def-0123456789ab", "acme", "blake3:" + "ab" * 32, TIME_MS)


def batch(n: int, *, salt: int = 0) -> list[tuple[str, str]]:
    """``n`` distinct (event id, digest) pairs."""
    return [(f"0190f0e8-{salt:04x}-7abc-8def-{i:012x}", f"blake3:{(i * 7 + salt) % 256:02x}" + "cd" * 31)
            for i in range(n)]


def reference_proof(leaves: list[bytes], index: int) -> list[bytes]:
    """The inclusion proof the log's own store gives (merkle.inclusion_proof), as a reference."""
    store, rng = MemoryNodeStore(), CompactRange()
    store.add_runs(rng.extend(leaves))
    return inclusion_proof(store, index, len(leaves))


@pytest.mark.parametrize("n", [1, 2, 3, 7, 500])
def test_every_receipt_of_a_batch_verifies_with_the_published_vkey(n: int) -> None:
    """Each receipt verifies with the vkey string and returns exactly its event, log, digest and time."""
    events = batch(n)
    receipts = sign_receipts("acme", TIME_MS, events, CachedEd25519Signer(SIGNER))
    assert len(receipts) == n
    for (event_id, digest), receipt in zip(events, receipts, strict=True):
        assert receipt.startswith(f"{RECEIPT_FORMAT}\nevent {event_id}\n")
        assert verify_receipt(receipt, VERIFIERS) == Receipt(event_id, "acme", digest, TIME_MS)
        assert verify_receipt(receipt.encode(), VERIFIERS) == Receipt(event_id, "acme", digest, TIME_MS)


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=1, max_value=64), st.data())
def test_proofs_and_root_match_the_log_tree(n: int, data: st.DataObject) -> None:
    """For any batch size the note's root is the RFC 6962 root of the leaves and each receipt
    carries the proof the log's own tree code gives; every receipt verifies."""
    events = batch(n, salt=n)
    receipts = sign_receipts("acme", TIME_MS, events, SIGNER)
    leaves = [leaf_hash(leaf_data(e, d)) for e, d in events]
    i = data.draw(st.integers(min_value=0, max_value=n - 1))
    parsed = parse_receipt_proof(receipts[i])
    head = parse_batch_text(parse_note(parsed.note).text)
    assert (head.size, head.root) == (n, root_of(leaves))
    assert (parsed.index, list(parsed.proof)) == (i, reference_proof(leaves, i))
    assert all(verify_receipt(r, VERIFIERS).event_id == e for r, (e, _) in zip(receipts, events, strict=True))


def test_layout_is_exactly_the_documented_one() -> None:
    """Header, event, digest, index, proof lines, blank line, then the batch note verbatim."""
    events = batch(3)
    receipts = sign_receipts("acme", TIME_MS, events, SIGNER)
    leaves = [leaf_hash(f"event {e}\ndigest {d}\n".encode()) for e, d in events]
    root = base64.b64encode(root_of(leaves)).decode()
    text = f"{BATCH_ORIGIN}\nlog acme\ntime {TIME_MS}\nsize 3\nroot {root}\n"
    note = sign_note(text, [SIGNER])  # Ed25519 is deterministic: the same bytes
    sibling = base64.b64encode(leaves[1]).decode()
    assert receipts[0] == (f"sealtrail.dev/receipt-proof/v2\nevent {events[0][0]}\ndigest {events[0][1]}\n"
                           f"index 0\n{sibling}\n{base64.b64encode(leaves[2]).decode()}\n\n{note}")
    # the trailing odd leaf has no sibling at the lowest level
    assert receipts[2] == (f"sealtrail.dev/receipt-proof/v2\nevent {events[2][0]}\ndigest {events[2][1]}\n"
                           f"index 2\n{base64.b64encode(root_of(leaves[:2])).decode()}\n\n{note}")


def test_one_event_batch_has_an_empty_proof() -> None:
    """A batch of one: index 0, no proof lines, the root is the leaf hash."""
    (receipt,) = sign_receipts("acme", TIME_MS, batch(1), SIGNER)
    assert re.match(r"sealtrail\.dev/receipt-proof/v2\nevent \S+\ndigest \S+\nindex 0\n\nsealtrail\.dev/receipt/v2\n",
                    receipt)
    assert verify_receipt(receipt, VERIFIERS).digest == batch(1)[0][1]


class CountingSigner:
    """A signer that counts its signatures."""

    def __init__(self) -> None:
        self.name, self.key_id, self.calls = SIGNER.name, SIGNER.key_id, 0

    def sign(self, text: bytes) -> bytes:
        self.calls += 1
        return SIGNER.sign(text)


def test_a_batch_is_signed_once_and_its_note_is_shared() -> None:
    """One signature per batch: every receipt carries the same note with one signature line."""
    counting = CountingSigner()
    receipts = sign_receipts("acme", TIME_MS, batch(500), counting)
    assert counting.calls == 1
    notes = {parse_receipt_proof(r).note for r in receipts}
    assert len(notes) == 1
    assert len(parse_note(notes.pop()).signatures) == 1


def test_an_empty_batch_has_no_receipts_and_bad_fields_are_refused() -> None:
    """Nothing to sign gives nothing; a field that is not in its published form is refused."""
    assert sign_receipts("acme", TIME_MS, [], SIGNER) == []
    good = batch(2)
    for bad in ([(good[0][0].upper(), good[0][1]), good[1]], [good[0], (good[1][0], "blake3:x")],
                [good[0], (good[1][0] + "\nroot x", good[1][1])]):
        with pytest.raises(InvalidInputError):
            sign_receipts("acme", TIME_MS, bad, SIGNER)
    for log, time_ms in (("ACME", TIME_MS), ("acme\nsize 9", TIME_MS), ("acme", -1)):
        with pytest.raises(InvalidInputError):
            sign_receipts(log, time_ms, good, SIGNER)


def _replace_line(receipt: str, number: int, new: str) -> str:
    lines = receipt.split("\n")
    lines[number] = new
    return "\n".join(lines)


def _resign_note(receipt: str, old: str, new: str) -> str:
    """The receipt with its note text changed and signed again by the same key."""
    head, _, note = receipt.partition("\n\n")
    text = parse_note(note).text.replace(old, new)
    assert text != parse_note(note).text
    return head + "\n\n" + sign_note(text, [SIGNER])


EVENTS, OTHER_EVENTS = batch(7), batch(7, salt=1)
RECEIPTS = sign_receipts("acme", TIME_MS, EVENTS, SIGNER)
OTHER = sign_receipts("acme", TIME_MS, OTHER_EVENTS, SIGNER)
ZERO_HASH = base64.b64encode(bytes(32)).decode()
ROOT = base64.b64encode(parse_batch_text(parse_note(parse_receipt_proof(RECEIPTS[3]).note).text).root).decode()
TAMPERED = [
    ("event id", RECEIPTS[3].replace(EVENTS[3][0], EVENTS[4][0]), InvalidProofError),
    ("digest", RECEIPTS[3].replace(EVENTS[3][1], EVENTS[4][1]), InvalidProofError),
    ("index", RECEIPTS[3].replace("\nindex 3\n", "\nindex 2\n"), InvalidProofError),
    ("index past the size", RECEIPTS[3].replace("\nindex 3\n", "\nindex 7\n"), InvalidProofError),
    ("a proof hash", _replace_line(RECEIPTS[3], 4, ZERO_HASH), InvalidProofError),
    ("a proof hash dropped", RECEIPTS[3].replace(RECEIPTS[3].split("\n")[4] + "\n", "", 1), InvalidProofError),
    ("a proof hash added", RECEIPTS[3].replace("\n\n", f"\n{ZERO_HASH}\n\n", 1), InvalidProofError),
    ("root", RECEIPTS[3].replace(f"\nroot {ROOT}\n", f"\nroot {ZERO_HASH}\n"), SignatureError),
    ("root, signed again", _resign_note(RECEIPTS[3], ROOT, ZERO_HASH), InvalidProofError),
    ("size", RECEIPTS[3].replace("\nsize 7\n", "\nsize 8\n"), SignatureError),
    # (for leaf 3 the proof is the same in any tree of 5 to 8 leaves, so the last leaf is used)
    ("size, signed again", _resign_note(RECEIPTS[6], "\nsize 7\n", "\nsize 8\n"), InvalidProofError),
    ("time", RECEIPTS[3].replace(f"\ntime {TIME_MS}\n", f"\ntime {TIME_MS + 1}\n"), SignatureError),
    ("log", RECEIPTS[3].replace("\nlog acme\n", "\nlog acmf\n"), SignatureError),
    ("signature", RECEIPTS[3][:-20] + ("A" if RECEIPTS[3][-20] != "A" else "B") + RECEIPTS[3][-19:],
     SignatureError),
    ("proof under another batch's note",
     RECEIPTS[3].partition("\n\n")[0] + "\n\n" + OTHER[3].partition("\n\n")[2], InvalidProofError),
    ("another batch's proof under this note",
     OTHER[3].partition("\n\n")[0] + "\n\n" + RECEIPTS[3].partition("\n\n")[2], InvalidProofError),
]


def test_the_tampering_cases_are_well_formed() -> None:
    """Each tampered receipt differs from the original (a no-op case would prove nothing)."""
    assert all(text not in RECEIPTS for _, text, _ in TAMPERED)


@pytest.mark.parametrize(("what", "text", "error"), TAMPERED, ids=[t[0] for t in TAMPERED])
def test_every_tampering_fails(what: str, text: str, error: type[VerificationError]) -> None:
    """Changing any field, proof hash, the note or its signature, or mixing two batches' receipts,
    makes verification fail with the specific error."""
    with pytest.raises(error):
        verify_receipt(text, VERIFIERS)


def test_a_foreign_key_of_the_same_name_fails() -> None:
    """A receipt signed by another key named like the ingest key does not verify, and vice versa."""
    impostor = Ed25519Signer.generate(SIGNER.name)
    with pytest.raises(SignatureError):
        verify_receipt(sign_receipts("acme", TIME_MS, EVENTS, impostor)[0], VERIFIERS)
    with pytest.raises(SignatureError):
        verify_receipt(RECEIPTS[0], [impostor.verifier()])


@pytest.mark.parametrize("text", [
    "",
    RECEIPT_FORMAT,
    RECEIPTS[3].replace("\nindex 3\n", "\nindex 03\n"),
    RECEIPTS[3].replace("\nindex 3\n", "\nindex -3\n"),
    RECEIPTS[3].replace(f"{RECEIPT_FORMAT}\n", f"{RECEIPT_FORMAT} \n"),
    RECEIPTS[3].replace(f"\nevent {EVENTS[3][0]}", f"\nevent {EVENTS[3][0].upper()}"),
    RECEIPTS[3].replace("\ndigest blake3:", "\ndigest sha256:"),
    _replace_line(RECEIPTS[3], 4, ZERO_HASH[:-2] + "B="),  # not canonical base64
    _replace_line(RECEIPTS[3], 4, ZERO_HASH[:-4]),  # not 32 bytes
    RECEIPTS[3].replace("\n\n", "\n", 1),  # no blank line before the note
    RECEIPTS[3].replace("\nsize 7\n", "\nsize 07\n"),
    RECEIPTS[3].replace("\nsize 7\n", "\nsize 0\n"),
    RECEIPTS[3].replace("\nroot ", "\nextra x\nroot "),
    RECEIPTS[3].replace("sealtrail.dev/receipt/v2\n", "sealtrail.dev/receipt/v1\n"),
    RECEIPTS[3] + "trailing",
    RECEIPTS[3].encode()[:-1] + b"\xff",
])
def test_malformed_receipts_are_refused(text: str | bytes) -> None:
    """Anything but the exact v2 layout raises NoteError, before or after the signature check."""
    with pytest.raises(NoteError):
        verify_receipt(text, VERIFIERS)


def test_v1_receipts_still_verify() -> None:
    """A single-event v1 receipt note verifies as before and gives back exactly what it promised."""
    note = sign_receipt(RECEIPT, CachedEd25519Signer(SIGNER))
    assert note.startswith("sealtrail.dev/receipt/v1\nevent 0190f0e8-")
    assert note == sign_note(RECEIPT.text(), [SIGNER])
    assert verify_receipt(note, VERIFIERS) == RECEIPT
    with pytest.raises(SignatureError):
        verify_receipt(note.replace("digest blake3:ab", "digest blake3:ac"), VERIFIERS)
    with pytest.raises(SignatureError):
        verify_receipt(note, [Ed25519Signer.generate(SIGNER.name).verifier()])


@pytest.mark.parametrize("text", ["", "sealtrail.dev/receipt/v1\n", RECEIPT.text().replace("time ", "time -"),
                                  RECEIPT.text() + "extra\n", RECEIPT.text() + "\n",
                                  RECEIPT.text().replace("log acme", "log ACME")])
def test_only_the_exact_v1_text_parses(text: str) -> None:
    """Anything but the five-line v1 text is refused."""
    with pytest.raises(NoteError):
        parse_receipt_text(text)


def test_cached_signer_signs_identically() -> None:
    """The cached signer is the same key: identical receipts to the core signer."""
    cached = CachedEd25519Signer(SIGNER)
    assert sign_receipts("acme", TIME_MS, EVENTS, SIGNER) == sign_receipts("acme", TIME_MS, EVENTS, cached)
    assert cached.vkey() == SIGNER.verifier().vkey()
    assert "seed" not in repr(cached)


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=len(RECEIPTS[3]) - 1), st.characters(max_codepoint=0x7f))
def test_any_one_character_change_fails_cleanly(position: int, char: str) -> None:
    """Changing one character anywhere either leaves the receipt as it was or fails with
    NoteError or a VerificationError, never another exception and never a different promise."""
    text = RECEIPTS[3][:position] + char + RECEIPTS[3][position + 1:]
    try:
        promised = verify_receipt(text, VERIFIERS)
    except (NoteError, VerificationError):
        return
    assert promised == Receipt(EVENTS[3][0], "acme", EVENTS[3][1], TIME_MS)
