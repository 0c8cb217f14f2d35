"""The bundle's entry reader: its fast path takes exactly what the line-by-line checks take."""

from __future__ import annotations

import base64
import binascii
import io

import orjson
import pybase64
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sealtrail.audit import bundle
from sealtrail.audit.bundle import Bundle, BundleMeta
from sealtrail.core.audit import AuditEntry, audit_entry
from sealtrail.errors import InvalidInputError

B64_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_ \n!é"


def _std(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


@given(st.text(alphabet=B64_CHARS, max_size=24))
def test_the_fast_decoder_accepts_only_what_validating_b64decode_accepts_and_decodes_alike(text: str) -> None:
    """Whatever pybase64's validating decoder accepts, base64.b64decode(validate=True) accepts with
    the same bytes (what it refuses goes the slow way, so the standard decoder has the last word)."""
    try:
        fast = pybase64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return
    assert _std(text) == fast


@given(st.binary(max_size=200))
def test_canonical_base64_takes_the_fast_path_alike(data: bytes) -> None:
    text = base64.b64encode(data).decode()
    assert pybase64.b64decode(text, validate=True) == data == _std(text)


def _bundle_of(lines: list[bytes]) -> Bundle:
    return Bundle(BundleMeta("l", "o", 0, ""), [], [], io.BytesIO(b"".join(lines)))


def _line(index: object, entry: object = "e30=", chain: object = "AA==", digest: object = None) -> bytes:
    return orjson.dumps({"index": index, "entry": entry, "chain": chain, "payload_digest": digest}) + b"\n"


def test_lines_read_in_blocks_match_the_one_by_one_reading(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lines split across block boundaries, a last line without newline and odd key orders read as
    audit_entry reads each line."""
    monkeypatch.setattr(bundle, "BLOCK", 7)
    lines = [_line(i, base64.b64encode(b"{}" * i).decode(), "AA==", None if i % 2 else f"blake3:{i}")
             for i in range(40)]
    lines.append(orjson.dumps({"payload_digest": None, "chain": "AQ==", "entry": "e30=", "index": 40, "x": 1}))
    got = [e for chunk in _bundle_of(lines).entries(chunk=3) for e in chunk]
    assert got == [audit_entry(orjson.loads(line)) for line in lines]
    assert got[-1] == AuditEntry(40, b"{}", b"\x01", None)


@pytest.mark.parametrize(("line", "reason"), [
    (_line(True), "index is not a non-negative integer"),
    (_line(-1), "index is not a non-negative integer"),
    (_line(1, entry="e30"), "not valid base64"),
    (_line(1, entry="é"), "not valid base64"),
    (_line(1, chain=None), "entry and chain must be base64 strings"),
    (_line(1, digest=5), "payload_digest must be a string or null"),
    (b"[1, 2]\n", "not an object"),
    (b"\n", "empty document"),
])
def test_a_bad_line_after_good_ones_is_named_with_the_checks_reason(line: bytes, reason: str) -> None:
    lines = [_line(0), _line(1), line]
    with pytest.raises(InvalidInputError, match=f"entries.jsonl line 3 is malformed: .*{reason}"):
        list(_bundle_of(lines).entries())


def test_lenient_base64_the_standard_decoder_accepts_is_still_accepted() -> None:
    """A value the fast decoder refuses but base64.b64decode(validate=True) accepts keeps being
    accepted, as before (the standard decoder decides)."""
    assert _std("QUJD=") == b"ABC"
    [[entry]] = list(_bundle_of([_line(0, entry="QUJD=")]).entries())
    assert entry.entry == b"ABC"


def test_a_long_line_is_refused_before_the_rest_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the cap at 100 bytes: a 100-byte line with its newline is refused (as readline's was),
    after the good lines before it are read; a last line of exactly 100 bytes without newline is not."""
    monkeypatch.setattr(bundle, "MAX_LINE", 100)
    monkeypatch.setattr(bundle, "BLOCK", 16)
    good = _line(0)
    exact = orjson.dumps({"index": 1, "entry": "e30=", "chain": "AA==", "payload_digest": "x" * 30})
    exact = exact[:-1] + b" " * (100 - len(exact)) + b"}"
    assert len(exact) == 100
    [[first, b]] = list(_bundle_of([good, exact]).entries())
    assert (first.index, b.index) == (0, 1)
    with pytest.raises(InvalidInputError, match="line 2 is longer than 100 bytes"):
        list(_bundle_of([good, exact + b"\n", good]).entries())
    with pytest.raises(InvalidInputError, match="line 2 is longer than 100 bytes"):
        list(_bundle_of([good, b"1" * 5000]).entries())
