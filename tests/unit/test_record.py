"""The sealed record's wire forms: version 2 (binary framing, written) and version 1 (JSON, read)."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sealtrail.core.record import NONCE_BYTES, RECORD_VERSION, SealedRecord, decode_record
from sealtrail.errors import InvalidInputError

_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
_HEADERS = st.fixed_dictionaries(
    {"event_id": _TEXT, "type": _TEXT, "tenant": _TEXT, "payload_digest": _TEXT, "key_ids": st.lists(_TEXT)},
    optional={"extra": st.one_of(_TEXT, st.integers(-(2**53), 2**53), st.booleans())},
)
HEADER = {"event_id": "0192f3a0-7c4e-7b21-9d3a-5e8f1c2b4a6d", "type": "tool_call", "tenant": "acme",
          "payload_digest": "blake3:" + "ab" * 32, "key_ids": ["cd" * 16], "note": "é \u2028 \"q\""}
RECORD = SealedRecord("acme", HEADER, bytes(range(24)), b"\x00\xff" * 40)


@given(log=_TEXT.filter(bool), header=_HEADERS, nonce=st.binary(min_size=24, max_size=24),
       ct=st.binary(max_size=300))
def test_both_versions_round_trip(log: str, header: dict[str, Any], nonce: bytes, ct: bytes) -> None:
    """Whatever the header and the bytes, v2 and v1 both decode to the record that was encoded."""
    record = SealedRecord(log, header, nonce, ct)
    assert decode_record(record.encode()) == record
    assert decode_record(record.encode_v1()) == record


def test_version_2_layout() -> None:
    """Version byte, big-endian meta length, JSON meta {"log","header"}, raw nonce, raw ciphertext."""
    raw = RECORD.encode()
    assert RECORD_VERSION == 2 and raw[0] == 2
    size = int.from_bytes(raw[1:5], "big")
    assert orjson.loads(raw[5:5 + size]) == {"log": "acme", "header": HEADER}
    assert raw[5 + size:5 + size + NONCE_BYTES] == RECORD.nonce
    assert raw[5 + size + NONCE_BYTES:] == RECORD.ciphertext


def test_version_1_is_the_documented_json() -> None:
    assert orjson.loads(RECORD.encode_v1()) == {
        "v": 1, "log": "acme", "header": HEADER, "nonce": base64.b64encode(RECORD.nonce).decode(),
        "ct": base64.b64encode(RECORD.ciphertext).decode()}


@pytest.mark.parametrize(("raw", "pointer"), [
    (b"", "/v"), (b"\x03abc", "/v"), (b"[1]", "/v"), (b"\x02\x00\x00", ""),
    (b"\x02\x00\x00\x00\x05{}", "/nonce"),
    (b"\x02\x00\x00\x00\x02{]" + bytes(24), ""),
    (b"\x02\x00\x00\x00\x02[]" + bytes(24), ""),
    (b"\x02\x00\x00\x00\x02{}" + bytes(24), "/log"),
    (b'\x02\x00\x00\x00\x0b{"log":"a"}' + bytes(24), "/header"),
    (b"\x02\xff\xff\xff\xff{}", "/nonce"),
    (b'{"v":2}', "/v"),
])
def test_bad_records_name_their_field(raw: bytes, pointer: str) -> None:
    """Every malformed record is refused with a pointer to what is wrong (never its bytes)."""
    with pytest.raises(InvalidInputError) as e:
        decode_record(raw)
    assert e.value.pointer == pointer


def test_a_header_lacking_a_field_is_refused_by_name() -> None:
    header = {k: v for k, v in HEADER.items() if k != "key_ids"}
    with pytest.raises(InvalidInputError) as e:
        decode_record(SealedRecord("acme", header, bytes(24), b"").encode())
    assert e.value.pointer == "/header/key_ids"


def test_a_short_nonce_cannot_be_encoded() -> None:
    with pytest.raises(InvalidInputError) as e:
        SealedRecord("acme", HEADER, b"\x01" * 23, b"").encode()
    assert e.value.pointer == "/nonce"
