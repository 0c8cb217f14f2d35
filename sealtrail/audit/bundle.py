"""Export bundles: everything needed to audit one log offline, in a directory or a tar file.

Layout (files at the top level of the directory or the tar)::

    bundle.json       {"format": "sealtrail.dev/export-bundle/v1", "log", "origin", "size", "exported_at"}
    keys.json         [{"purpose", "vkey", "not_before", "not_after"}, ...]   published verifier keys
    checkpoints.json  ["<signed checkpoint note>", ...]                        oldest first
    entries.jsonl     one {"index", "entry": base64, "chain": base64, "payload_digest": str|null} per line

``size`` is the tree size of the latest checkpoint; ``entries.jsonl`` holds entries 0..size-1.
Nothing in a bundle is secret: entries hold headers only, and no payload is included (only the
digest of each stored ciphertext, or null when none is stored). A tar may be gzip-compressed.
"""

from __future__ import annotations

import base64
import io
import shutil
import tarfile
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

from sealtrail.core.audit import AuditEntry
from sealtrail.errors import InvalidInputError

BUNDLE_FORMAT = "sealtrail.dev/export-bundle/v1"
META, KEYS, CHECKPOINTS, ENTRIES = "bundle.json", "keys.json", "checkpoints.json", "entries.jsonl"
CHUNK = 10_000


@dataclass(frozen=True, slots=True)
class BundleMeta:
    log: str
    origin: str
    size: int
    exported_at: str

    def as_json(self) -> dict[str, Any]:
        return {"format": BUNDLE_FORMAT, "log": self.log, "origin": self.origin, "size": self.size,
                "exported_at": self.exported_at}


def is_tar(path: Path) -> bool:
    return path.name.endswith((".tar", ".tar.gz", ".tgz"))


def entry_line(e: AuditEntry) -> bytes:
    line = {"index": e.index, "entry": base64.b64encode(e.entry).decode(),
            "chain": base64.b64encode(e.chain).decode(), "payload_digest": e.payload_digest}
    return orjson.dumps(line) + b"\n"


class BundleWriter:
    """Writes a bundle into a fresh directory; :meth:`close` packs it into a tar when asked."""

    def __init__(self, out: Path) -> None:
        if out.exists():
            raise InvalidInputError(f"{out} already exists; a bundle is never overwritten")
        self._out = out
        self._dir = Path(tempfile.mkdtemp(prefix=".bundle-", dir=out.parent)) if is_tar(out) else out
        if not is_tar(out):
            out.mkdir(parents=True)
        self._entries: IO[bytes] = (self._dir / ENTRIES).open("wb")

    def write_header(self, meta: BundleMeta, keys: list[dict[str, Any]], notes: list[str]) -> None:
        (self._dir / META).write_bytes(orjson.dumps(meta.as_json(), option=orjson.OPT_INDENT_2))
        (self._dir / KEYS).write_bytes(orjson.dumps(keys, option=orjson.OPT_INDENT_2))
        (self._dir / CHECKPOINTS).write_bytes(orjson.dumps(notes, option=orjson.OPT_INDENT_2))

    def write_entries(self, entries: Iterable[AuditEntry]) -> None:
        self._entries.write(b"".join(entry_line(e) for e in entries))

    def close(self) -> None:
        self._entries.close()
        if not is_tar(self._out):
            return
        gz = self._out.name.endswith(("gz", "tgz"))
        with tarfile.open(self._out, "w:gz") if gz else tarfile.open(self._out, "w") as tar:
            for name in (META, KEYS, CHECKPOINTS, ENTRIES):
                tar.add(self._dir / name, arcname=name)
        shutil.rmtree(self._dir)


@dataclass
class Bundle:
    """An open bundle: its metadata, keys and notes, and a reader of its entries."""

    meta: BundleMeta
    keys: list[dict[str, Any]]
    notes: list[str]
    _entries: IO[bytes]

    def entries(self, chunk: int = CHUNK) -> Iterator[list[AuditEntry]]:
        """Entries in file order, ``chunk`` at a time."""
        b64 = base64.b64decode
        batch: list[AuditEntry] = []
        for n, line in enumerate(self._entries, start=1):
            try:
                e = orjson.loads(line)
                batch.append(AuditEntry(e["index"], b64(e["entry"]), b64(e["chain"]), e["payload_digest"]))
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as err:
                raise InvalidInputError(f"{ENTRIES} line {n} is malformed") from err
            if len(batch) >= chunk:
                yield batch
                batch = []
        if batch:
            yield batch


def _load(read: Any, name: str) -> Any:
    try:
        return orjson.loads(read(name))
    except (orjson.JSONDecodeError, KeyError, OSError) as e:
        raise InvalidInputError(f"bundle has no readable {name}") from e


def _meta(doc: Any) -> BundleMeta:
    if not isinstance(doc, dict) or doc.get("format") != BUNDLE_FORMAT:
        raise InvalidInputError(f"{META} is not a {BUNDLE_FORMAT} bundle")
    return BundleMeta(str(doc["log"]), str(doc["origin"]), int(doc["size"]), str(doc.get("exported_at", "")))


@contextmanager
def open_bundle(path: Path) -> Iterator[Bundle]:
    """Open a bundle directory or tar for reading."""
    if path.is_dir():
        with (path / ENTRIES).open("rb") as entries:
            yield _bundle(lambda name: (path / name).read_bytes(), entries)
        return
    try:
        tar = tarfile.open(path)  # noqa: SIM115 - closed by the `with` below, after the check
    except (OSError, tarfile.TarError) as e:
        raise InvalidInputError(f"{path} is neither a bundle directory nor a tar file") from e
    with tar:
        def read(name: str) -> bytes:
            member = tar.extractfile(name)
            if member is None:
                raise KeyError(name)
            return member.read()

        member = tar.extractfile(ENTRIES) if ENTRIES in tar.getnames() else None
        yield _bundle(read, member if member is not None else io.BytesIO())


def _bundle(read: Any, entries: IO[bytes]) -> Bundle:
    meta = _meta(_load(read, META))
    keys, notes = _load(read, KEYS), _load(read, CHECKPOINTS)
    if not isinstance(keys, list) or not isinstance(notes, list):
        raise InvalidInputError("bundle keys and checkpoints must be lists")
    return Bundle(meta, keys, [str(n) for n in notes], entries)
