"""The binary page of entries: the same facts as the JSON listing, round-tripping exactly."""

from __future__ import annotations

import os

import pytest

from sealtrail.core.audit import AuditEntry
from sealtrail.core.entrypage import decode_page, encode_page
from sealtrail.errors import InvalidInputError


def test_page_round_trips_with_and_without_payloads() -> None:
    """Indices, exact entry bytes, chain values and payload digests (or their absence) survive."""
    rows = [(i, os.urandom(50 + i), os.urandom(32), None if i % 3 else os.urandom(32)) for i in range(20)]
    got = decode_page(encode_page(rows))
    assert got == [AuditEntry(i, e, c, None if d is None else "blake3:" + d.hex()) for i, e, c, d in rows]
    assert decode_page(encode_page([])) == []


def test_truncated_or_foreign_pages_are_refused() -> None:
    """A page cut anywhere, or without the magic, is refused rather than read short."""
    page = encode_page([(7, b'{"index":7}', bytes(32), bytes(32))])
    for cut in range(5, len(page)):
        with pytest.raises(InvalidInputError):
            decode_page(page[:cut])
    with pytest.raises(InvalidInputError):
        decode_page(b"JSON" + page[4:])
    with pytest.raises(InvalidInputError):
        encode_page([(1, b"{}", bytes(31), None)])
