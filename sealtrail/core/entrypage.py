"""The binary form of a page of log entries, for auditors who fetch whole logs.

``GET /v1/logs/{log}/entries`` answers JSON (base64 fields) by default, and this form when asked
with ``Accept: application/vnd.sealtrail.entries.v1``: the same facts without base64 or JSON, so
a verifier reads a million entries in seconds. Layout, all integers big-endian::

    "STE1"                                    4-byte magic
    then, per entry, in index order:
      index        u64
      entry_len    u32                        length of the exact entry bytes
      flags        u8                         bit 0: a payload is stored for the entry
      entry        entry_len bytes            RFC 8785 header, exactly as hashed
      chain        32 bytes                   stored hash-chain value
      digest       32 bytes, if flags bit 0   BLAKE3(nonce || ciphertext) of the stored payload

Pure: no I/O.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

from sealtrail.core.audit import AuditEntry
from sealtrail.errors import InvalidInputError

MEDIA_TYPE = "application/vnd.sealtrail.entries.v1"
MAGIC = b"STE1"
CHAIN_BYTES = 32
DIGEST_BYTES = 32
DIGEST_PREFIX = "blake3:"
_HEAD = struct.Struct(">QIB")


def encode_page(entries: Iterable[tuple[int, bytes, bytes, bytes | None]]) -> bytes:
    """``(index, entry, chain, raw payload digest or None)`` rows as one page."""
    parts = [MAGIC]
    pack = _HEAD.pack
    for index, entry, chain, digest in entries:
        if len(chain) != CHAIN_BYTES or (digest is not None and len(digest) != DIGEST_BYTES):
            raise InvalidInputError("chain values and digests are 32 bytes")
        parts.append(pack(index, len(entry), 0 if digest is None else 1))
        parts.append(entry)
        parts.append(chain)
        if digest is not None:
            parts.append(digest)
    return b"".join(parts)


def decode_page(data: bytes) -> list[AuditEntry]:
    """The entries of a page; InvalidInputError when it is truncated or malformed."""
    if data[:4] != MAGIC:
        raise InvalidInputError("not a sealtrail entries v1 page")
    out: list[AuditEntry] = []
    pos, end, head = 4, len(data), _HEAD.size
    unpack = _HEAD.unpack_from
    try:
        while pos < end:
            index, size, flags = unpack(data, pos)
            body = pos + head
            chain = body + size
            stop = chain + CHAIN_BYTES
            digest = None
            if flags & 1:
                digest = DIGEST_PREFIX + data[stop:stop + DIGEST_BYTES].hex()
                stop += DIGEST_BYTES
            if stop > end:
                raise InvalidInputError("entries page is truncated")
            out.append(AuditEntry(index, data[body:chain], data[chain:chain + CHAIN_BYTES], digest))
            pos = stop
    except struct.error as e:
        raise InvalidInputError("entries page is truncated") from e
    return out
