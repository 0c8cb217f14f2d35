"""Erasure receipts (signed notes) and the keyed hash that keeps erasure history findable."""

from __future__ import annotations

import pytest

from sealtrail.core.erasure import (
    ErasureReceipt,
    check_request_ref,
    history_ref,
    parse_erasure_receipt_text,
    sign_erasure_receipt,
    verify_erasure_receipt,
)
from sealtrail.core.note import Ed25519Signer
from sealtrail.core.sealing import subject_ref
from sealtrail.errors import InvalidInputError, NoteError, SignatureError

RECEIPT = ErasureReceipt("acme", "DSR-2026/17", "gdpr.art17", "01a20cd4-a96b-7c93-acb2-684055ea0b7c",
                         ("a" * 32, "b" * 32), 2000, 2000, 1_800_000_000_000, 1_800_000_010_000)


def test_receipt_round_trips_and_verifies_with_the_service_key() -> None:
    """A signed receipt verifies with the query service's vkey and says exactly what was erased."""
    signer = Ed25519Signer.generate("test-query")
    note = sign_erasure_receipt(RECEIPT, signer)
    assert verify_erasure_receipt(note, [signer.verifier()]) == RECEIPT
    assert "keys " + "a" * 32 + "," + "b" * 32 + "\n" in note


def test_receipt_from_another_key_or_edited_text_is_refused() -> None:
    """Another key's signature, or a changed count, does not verify."""
    signer, other = Ed25519Signer.generate("test-query"), Ed25519Signer.generate("test-query")
    note = sign_erasure_receipt(RECEIPT, signer)
    with pytest.raises(SignatureError):
        verify_erasure_receipt(note, [other.verifier()])
    with pytest.raises(SignatureError):
        verify_erasure_receipt(note.replace("payloads 2000", "payloads 2001"), [signer.verifier()])


def test_receipt_without_keys_and_malformed_texts() -> None:
    """A subject without keys is written as '-'; texts not of the v1 form are refused."""
    empty = ErasureReceipt("acme", "R1", "gdpr.art17", RECEIPT.event_id, (), 0, 0, 1, 2)
    assert parse_erasure_receipt_text(empty.text()) == empty
    with pytest.raises(NoteError):
        parse_erasure_receipt_text(empty.text().replace("keys -", "keys alice"))
    with pytest.raises(NoteError):
        ErasureReceipt("acme", "bad ref", "gdpr.art17", RECEIPT.event_id, (), 0, 0, 1, 2).text()


def test_history_ref_is_keyed_normalised_and_not_the_subject_ref() -> None:
    """Spellings of one subject share a history_ref; another tenant key gives another; and it is
    never equal to the subject_ref that links to keys."""
    key, other = bytes(range(32)), bytes(range(1, 33))
    assert history_ref(key, " USER:alice@Example.com") == history_ref(key, "user:alice@example.com")
    assert history_ref(key, "user:alice@example.com") != history_ref(other, "user:alice@example.com")
    assert history_ref(key, "user:alice@example.com") != subject_ref(key, "user:alice@example.com")


def test_request_refs_are_identifiers() -> None:
    """Request references are ticket-like identifiers; free text is refused without echo."""
    assert check_request_ref("DSR-2026/17#a") == "DSR-2026/17#a"
    with pytest.raises(InvalidInputError) as e:
        check_request_ref("Alice asked me")
    assert "Alice" not in str(e.value)
