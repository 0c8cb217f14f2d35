"""What the query API shows of each entry, held to the verified log (DESIGN §8.7). Pure code.

``sealtrail verify --calls`` reads the investigation list (``GET /v1/calls?type=all``, every entry
of the tenant) beside the log it verifies. Each shown row names its index, its leaf hash and its
header; after the audit has checked the entries against the signed checkpoint, every row must
carry that entry's leaf hash and header exactly, every entry below the checkpoint's size must be
shown once, and the service must report no disagreement of its stored copies. The first index
where this fails is named.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson

from sealtrail.core.merkle import leaf_hash
from sealtrail.errors import VerificationError

_DIGEST = 16


def _header_digest(header: Mapping[str, Any]) -> bytes:
    return hashlib.blake2b(orjson.dumps(header, option=orjson.OPT_SORT_KEYS), digest_size=_DIGEST).digest()


class ShownCalls:
    """The rows of the calls list for entries ``[0, size)``, compared as the audit reads the entries."""

    def __init__(self, log: str, size: int) -> None:
        self._log, self._size = log, size
        self._leaves = bytearray(32 * size)
        self._headers = bytearray(_DIGEST * size)
        self._seen = bytearray(size)
        self._problem: tuple[int, str] | None = None
        self.rows = 0

    def _fail(self, index: int, what: str) -> None:
        if self._problem is None or index < self._problem[0]:
            self._problem = (index, what)

    def add_page(self, body: Mapping[str, Any]) -> None:
        """One page of ``GET /v1/calls`` (``calls`` and ``inconsistent``)."""
        for d in body.get("inconsistent") or ():
            if d.get("log") == self._log and isinstance(d.get("index"), int) and d["index"] < self._size:
                fields = ", ".join(str(f) for f in d.get("fields") or ())
                self._fail(d["index"], f"the query API reports that its stored copies of entry {d['index']} "
                                       f"disagree with the signed entry ({fields})")
        for row in body.get("calls") or ():
            self._add_row(row)

    def _add_row(self, row: Mapping[str, Any]) -> None:
        index = row.get("index")
        if row.get("log") != self._log or not isinstance(index, int) or index < 0:
            raise VerificationError("the query API showed a call that names no index of this log")
        if index >= self._size:
            return  # not yet under a signed checkpoint
        self.rows += 1
        if self._seen[index]:
            self._fail(index, f"the query API shows entry {index} twice")
            return
        self._seen[index] = 1
        try:
            leaf = base64.b64decode(str(row.get("leaf_hash")), validate=True)
        except ValueError:
            leaf = b""
        if len(leaf) != 32 or not isinstance(row.get("header"), dict):
            self._fail(index, f"the query API shows entry {index} without a leaf hash or header")
            return
        self._leaves[32 * index:32 * index + 32] = leaf
        self._headers[_DIGEST * index:_DIGEST * (index + 1)] = _header_digest(row["header"])
        if row.get("inconsistent"):
            self._fail(index, f"the query API flags entry {index} as inconsistent ({', '.join(row['inconsistent'])})")

    def check(self, entries: Iterable[tuple[int, bytes]]) -> None:
        """Compare verified entries (index, bytes) with what was shown of them."""
        for index, entry in entries:
            if index >= self._size:
                continue
            if not self._seen[index]:
                self._fail(index, f"entry {index} is missing from the calls the query API shows")
                continue
            if bytes(self._leaves[32 * index:32 * index + 32]) != leaf_hash(entry):
                self._fail(index, f"the query API shows entry {index} with another leaf hash than the signed entry's")
            elif bytes(self._headers[_DIGEST * index:_DIGEST * (index + 1)]) != _header_digest(orjson.loads(entry)):
                self._fail(index, f"the query API shows entry {index} with another header than the signed entry's")

    def finish(self) -> int:
        """Raise VerificationError naming the first bad index; else the number of rows checked."""
        if self._problem is not None:
            raise VerificationError(self._problem[1], index=self._problem[0])
        return self.rows


def entry_pairs(entries: Sequence[Any]) -> list[tuple[int, bytes]]:
    """(index, bytes) of audit entries (anything with ``index`` and ``entry``)."""
    return [(e.index, e.entry) for e in entries]
