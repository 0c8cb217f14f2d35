"""The sealed record's wire form: exactly orjson's bytes of the documented object, and back."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sealtrail.core.record import RECORD_VERSION, SealedRecord, decode_record
from sealtrail.errors import InvalidInputError

_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
_HEADERS = st.dictionaries(_TEXT, st.one_of(_TEXT, st.integers(-(2**53), 2**53), st.booleans(),
                                            st.lists(_TEXT, max_size=3)), max_size=8)


def _reference(record: SealedRecord) -> bytes:
    return orjson.dumps({"v": RECORD_VERSION, "log": record.log, "header": record.header,
                         "nonce": base64.b64encode(record.nonce).decode(),
                         "ct": base64.b64encode(record.ciphertext).decode()})


@given(log=_TEXT, header=_HEADERS, nonce=st.binary(min_size=24, max_size=24), ct=st.binary(max_size=300))
def test_encode_is_the_documented_object(log: str, header: dict[str, Any], nonce: bytes, ct: bytes) -> None:
    """Assembled by hand for speed, the bytes equal orjson's dump of {"v","log","header","nonce","ct"}."""
    record = SealedRecord(log, header, nonce, ct)
    assert record.encode() == _reference(record)


def test_round_trip() -> None:
    header = {"event_id": "0192f3a0-7c4e-7b21-9d3a-5e8f1c2b4a6d", "type": "tool_call", "tenant": "acme",
              "payload_digest": "blake3:" + "ab" * 32, "key_ids": ["cd" * 16], "note": "é \u2028 \"q\""}
    record = SealedRecord("acme", header, bytes(range(24)), b"\x00\xff" * 40)
    assert decode_record(record.encode()) == record


def test_a_short_nonce_is_refused_by_name() -> None:
    raw = SealedRecord("acme", {"event_id": "e", "type": "t", "tenant": "acme", "payload_digest": "d",
                                "key_ids": []}, b"\x01" * 23, b"").encode()
    with pytest.raises(InvalidInputError) as e:
        decode_record(raw)
    assert e.value.pointer == "/nonce"
