"""The sealed record: what ingest publishes to the bus and the ledger consumes.

This is the contract between the two services. A record carries the event header (already
stamped with tenant, gateway, receipt time, key ids, payload digest and size) and the sealed
payload (nonce and ciphertext). It MUST NOT carry plaintext payload or data-subject identifiers.
The bus message key is the log id, so one partition orders each log.

Wire form: UTF-8 JSON object ``{"v": 1, "log": str, "header": {...}, "nonce": b64, "ct": b64}``.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

import orjson

from sealtrail.errors import InvalidInputError

RECORD_VERSION = 1
NONCE_BYTES = 24


@dataclass(frozen=True, slots=True)
class SealedRecord:
    """One sealed event on its way to the log."""

    log: str
    header: dict[str, Any]
    nonce: bytes
    ciphertext: bytes

    @property
    def event_id(self) -> str:
        return str(self.header["event_id"])

    def encode(self) -> bytes:
        """The wire form: the bytes of ``orjson.dumps`` of the object, assembled without decoding
        the base64 text into ``str`` and encoding it again (base64 needs no JSON escaping)."""
        return b"".join((
            b'{"v":1,"log":', orjson.dumps(self.log), b',"header":', orjson.dumps(self.header),
            b',"nonce":"', base64.b64encode(self.nonce), b'","ct":"', base64.b64encode(self.ciphertext), b'"}',
        ))


def decode_record(raw: bytes | None) -> SealedRecord:
    """Parse and check a record; raise InvalidInputError naming the bad field (never its value)."""
    if raw is None:
        raise InvalidInputError("record has no value", pointer="")
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise InvalidInputError("record is not valid JSON", pointer="") from e
    if not isinstance(obj, dict):
        raise InvalidInputError("record is not a JSON object", pointer="")
    if obj.get("v") != RECORD_VERSION:
        raise InvalidInputError(f"unsupported record version (want {RECORD_VERSION})", pointer="/v")
    log, header = obj.get("log"), obj.get("header")
    if not isinstance(log, str) or not log:
        raise InvalidInputError("log must be a non-empty string", pointer="/log")
    if not isinstance(header, dict):
        raise InvalidInputError("header must be an object", pointer="/header")
    for field in ("event_id", "type", "tenant", "payload_digest", "key_ids"):
        if field not in header:
            raise InvalidInputError(f"header lacks {field}", pointer=f"/header/{field}")
    nonce = _b64(obj.get("nonce"), "/nonce")
    if len(nonce) != NONCE_BYTES:
        raise InvalidInputError(f"nonce must be {NONCE_BYTES} bytes", pointer="/nonce")
    return SealedRecord(log=log, header=header, nonce=nonce, ciphertext=_b64(obj.get("ct"), "/ct"))


def _b64(value: object, pointer: str) -> bytes:
    if not isinstance(value, str):
        raise InvalidInputError("must be a base64 string", pointer=pointer)
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as e:
        raise InvalidInputError("is not valid base64", pointer=pointer) from e
