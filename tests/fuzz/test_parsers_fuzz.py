"""Fuzzing the text and byte parsers: whatever arrives, they answer or raise a typed Sealtrail error.

Arbitrary text and bytes, plus mutations of valid inputs (so the fuzzer gets past the first line),
go through the signed-note, checkpoint, cosignature, tlog-proof, receipt, erasure-receipt and
sealed-record parsers and the key-string decoders. Anything other than the documented error type
(an IndexError, ValueError, UnicodeError...) fails the test. The batch validator is fuzzed in
tests/unit/test_events_fuzz.py. ``SEALTRAIL_FUZZ_EXAMPLES`` raises the number of examples.
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Callable

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sealtrail.core.checkpoint import format_checkpoint, parse_checkpoint
from sealtrail.core.cosignature import CosignatureSigner, CosignatureVerifier, verify_cosignature
from sealtrail.core.erasure import (
    ErasureReceipt,
    parse_erasure_receipt_text,
    sign_erasure_receipt,
    verify_erasure_receipt,
)
from sealtrail.core.note import Ed25519Signer, Ed25519Verifier, decode_private_key, decode_vkey, parse_note, sign_note
from sealtrail.core.receipt import Receipt, parse_receipt_text, sign_receipt, verify_receipt
from sealtrail.core.record import SealedRecord, decode_record
from sealtrail.core.tlogproof import format_proof, parse_proof, verify_proof
from sealtrail.errors import InvalidInputError, NoteError, SealtrailError, VerificationError
from tests.fuzz.budget import examples

SIGNER = Ed25519Signer("fuzz.example/log", bytes(range(32)))
COSIGNER = CosignatureSigner("fuzz.example/witness", bytes(range(32, 64)))
VERIFIERS = [SIGNER.verifier()]
ROOT = bytes(range(32))
CHECKPOINT = format_checkpoint("fuzz.example/log", 2, ROOT)
NOTE = sign_note(CHECKPOINT, [SIGNER, COSIGNER.at(1_700_000_000)])
PROOF = format_proof(1, [bytes(32)], NOTE, extra=b"x")
RECEIPT = sign_receipt(Receipt("0190f0e8-1234-7abc-8def-0123456789ab", "acme", "blake3:" + "ab" * 32,
                               1_700_000_000_123), SIGNER)
ERASURE = sign_erasure_receipt(ErasureReceipt("acme", "DSR-1", "gdpr.art17", "01a20cd4-a96b-7c93-acb2-684055ea0b7c",
                                              ("a" * 32, "b" * 32), 3, 4, 5, 6), SIGNER)
SEALED = SealedRecord(log="acme", header={"event_id": "e", "type": "tool_call", "tenant": "acme",
                                          "payload_digest": "blake3:00", "key_ids": []},
                      nonce=bytes(24), ciphertext=b"ct")
RECORD = SEALED.encode_v1()
RECORD_V2 = SEALED.encode()
SEEDS = [NOTE, PROOF, RECEIPT, ERASURE, CHECKPOINT, SIGNER.verifier().vkey(), SIGNER.private_key(),
         RECORD.decode()]
FUZZ = settings(max_examples=examples(300), derandomize=True, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))

_ALPHABET = st.characters(codec="utf-8") | st.sampled_from("\n \u2014+/=0123456789abcdefABCDEF")


@st.composite
def _mutated(draw: st.DrawFn) -> str:
    """A valid input with a few characters replaced, inserted or deleted, or cut short."""
    text = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(text)))
        op = draw(st.sampled_from(("replace", "insert", "delete", "cut")))
        piece = draw(st.text(_ALPHABET, min_size=1, max_size=3))
        if op == "replace":
            text = text[:pos] + piece + text[pos + len(piece):]
        elif op == "insert":
            text = text[:pos] + piece + text[pos:]
        elif op == "delete":
            text = text[:pos] + text[pos + 1:]
        else:
            text = text[:pos]
    return text


TEXTS = st.text(_ALPHABET, max_size=300) | _mutated()
BYTES = st.binary(max_size=300) | TEXTS.map(lambda t: t.encode("utf-8", "surrogatepass"))


def _only(errors: tuple[type[SealtrailError], ...], parse: Callable[[], object]) -> None:
    with contextlib.suppress(*errors):
        parse()


@FUZZ
@given(data=BYTES | TEXTS)
def test_signed_notes_and_key_strings(data: str | bytes) -> None:
    """parse_note and open_note raise only NoteError/SignatureError; key decoders only NoteError."""
    _only((NoteError,), lambda: parse_note(data))
    text = data if isinstance(data, str) else data.decode("utf-8", "replace")
    _only((NoteError,), lambda: decode_vkey(text))
    _only((NoteError,), lambda: decode_private_key(text))
    _only((NoteError,), lambda: Ed25519Verifier.from_vkey(text))
    _only((NoteError,), lambda: CosignatureVerifier.from_vkey(text))


@FUZZ
@given(text=TEXTS)
def test_checkpoints_and_cosignatures(text: str) -> None:
    """parse_checkpoint raises only NoteError; cosignature checks only NoteError/VerificationError."""
    _only((NoteError,), lambda: parse_checkpoint(text))
    try:
        note = parse_note(text)
    except NoteError:
        return
    for sig in note.signatures:
        _only((NoteError, VerificationError),
              lambda sig=sig: verify_cosignature(note.text.encode(), sig, COSIGNER.verifier()))  # type: ignore[misc]


@FUZZ
@given(data=BYTES | TEXTS)
def test_tlog_proofs(data: str | bytes) -> None:
    """parse_proof raises only NoteError; verify_proof only NoteError or a VerificationError."""
    _only((NoteError,), lambda: parse_proof(data))
    _only((NoteError, VerificationError), lambda: verify_proof(data, b"entry", VERIFIERS))


@FUZZ
@given(data=BYTES | TEXTS)
def test_receipts(data: str | bytes) -> None:
    """Ingest and erasure receipts: the text parsers raise only NoteError, the verifiers only
    NoteError or VerificationError (SignatureError)."""
    text = data if isinstance(data, str) else data.decode("utf-8", "replace")
    _only((NoteError,), lambda: parse_receipt_text(text))
    _only((NoteError,), lambda: parse_erasure_receipt_text(text))
    _only((NoteError, VerificationError), lambda: verify_receipt(data, VERIFIERS))
    _only((NoteError, VerificationError), lambda: verify_erasure_receipt(data, VERIFIERS))


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False)
    | st.text(max_size=30)
    | st.sampled_from([1, "acme", base64.b64encode(bytes(24)).decode(), "@@", "AAA"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["v", "log", "header", "nonce", "ct", "event_id", "type", "tenant", "payload_digest",
                         "key_ids"]) | st.text(max_size=8), inner, max_size=8),
    max_leaves=25,
)


@st.composite
def _mutated_v2(draw: st.DrawFn) -> bytes:
    """A valid version-2 record with a few bytes replaced, inserted or deleted, or cut short."""
    data = bytearray(RECORD_V2)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["replace", "insert", "delete", "cut"]))
        if action == "cut":
            del data[at:]
        elif action == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=4))
        elif at < len(data):
            if action == "delete":
                del data[at]
            else:
                data[at] = draw(st.integers(0, 255))
    return bytes(data)


@FUZZ
@given(raw=BYTES | _JSON.map(orjson.dumps) | _mutated_v2() | st.none())
def test_sealed_records(raw: bytes | str | None) -> None:
    """decode_record raises only InvalidInputError, whose pointer names a record field."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    try:
        decode_record(data)
    except InvalidInputError as e:
        assert e.pointer in ("", "/v", "/log", "/header", "/nonce", "/ct") or e.pointer.startswith("/header/")


def test_seeds_are_valid() -> None:
    """The fuzzers mutate inputs that really parse: each seed is accepted unmutated."""
    assert verify_receipt(RECEIPT, VERIFIERS).log == "acme"
    assert verify_erasure_receipt(ERASURE, VERIFIERS).tenant == "acme"
    assert parse_proof(PROOF).index == 1
    assert parse_checkpoint(parse_note(NOTE).text).size == 2
    assert decode_record(RECORD) == decode_record(RECORD_V2) == SEALED
    cosig = parse_note(NOTE).signatures[1]
    assert verify_cosignature(CHECKPOINT.encode(), cosig, COSIGNER.verifier()) == 1_700_000_000
