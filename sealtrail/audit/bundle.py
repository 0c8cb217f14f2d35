"""Export bundles: everything needed to audit one log offline, in a directory or a tar file.

Layout (files at the top level of the directory or the tar)::

    bundle.json       {"format": "sealtrail.dev/export-bundle/v1", "log", "origin", "size", "exported_at"}
    keys.json         [{"purpose", "vkey", "not_before", "not_after"}, ...]   published verifier keys
    checkpoints.json  ["<signed checkpoint note>", ...]                        oldest first
    entries.jsonl     one {"index", "entry": base64, "chain": base64, "payload_digest": str|null} per line

``size`` is the tree size of the latest checkpoint; ``entries.jsonl`` holds entries 0..size-1.
Nothing in a bundle is secret: entries hold headers only, and no payload is included (only the
digest of each stored ciphertext, or null when none is stored). A tar may be gzip-compressed.

The output path names the form: ``.tar``, ``.tar.gz`` or ``.tgz`` for a tar, no suffix for a
directory; any other suffix is refused. A bundle is written under a hidden temporary name next to
the output and renamed into place only when complete (:meth:`BundleWriter.close`); a failed
export removes it (:meth:`BundleWriter.abort`) and leaves nothing at the output path.
"""

from __future__ import annotations

import base64
import os
import shutil
import stat
import tarfile
import tempfile
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson
import pybase64

from sealtrail.core.audit import AuditEntry, audit_entry
from sealtrail.errors import InvalidInputError

BUNDLE_FORMAT = "sealtrail.dev/export-bundle/v1"
META, KEYS, CHECKPOINTS, ENTRIES = "bundle.json", "keys.json", "checkpoints.json", "entries.jsonl"
CHUNK = 10_000
MAX_MEMBER = 64 << 20
"""The largest ``bundle.json``, ``keys.json`` or ``checkpoints.json`` read (bytes)."""
MAX_LINE = 16 << 20
"""The longest line of ``entries.jsonl`` read (bytes); an entry line is a few hundred."""
BLOCK = 1 << 20
"""How much of ``entries.jsonl`` is read at a time (bytes)."""
_b64 = pybase64.b64decode


@dataclass(frozen=True, slots=True)
class BundleMeta:
    log: str
    origin: str
    size: int
    exported_at: str

    def as_json(self) -> dict[str, Any]:
        return {"format": BUNDLE_FORMAT, "log": self.log, "origin": self.origin, "size": self.size,
                "exported_at": self.exported_at}


TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz")


def is_tar(path: Path) -> bool:
    return path.name.endswith(TAR_SUFFIXES)


def check_output(out: Path) -> None:
    """Refuse an output path a bundle cannot be written to, before anything is fetched."""
    if out.suffix and not is_tar(out):
        raise InvalidInputError(f"{out}: a bundle is a directory (no suffix) or a .tar, .tar.gz or .tgz file, "
                                f"not {out.suffix}")
    if out.exists() or out.is_symlink():
        raise InvalidInputError(f"{out} already exists; a bundle is never overwritten")
    if not out.parent.is_dir():
        raise InvalidInputError(f"{out}: directory {out.parent} does not exist")


def entry_line(e: AuditEntry) -> bytes:
    line = {"index": e.index, "entry": base64.b64encode(e.entry).decode(),
            "chain": base64.b64encode(e.chain).decode(), "payload_digest": e.payload_digest}
    return orjson.dumps(line) + b"\n"


class BundleWriter:
    """Writes a bundle into a temporary directory next to ``out``; :meth:`close` packs it into a
    tar when asked and moves it to ``out``; :meth:`abort` removes everything written."""

    def __init__(self, out: Path) -> None:
        check_output(out)
        self._out = out
        self._dir = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
        self._entries: IO[bytes] = (self._dir / ENTRIES).open("wb")

    def write_header(self, meta: BundleMeta, keys: list[dict[str, Any]], notes: list[str]) -> None:
        (self._dir / META).write_bytes(orjson.dumps(meta.as_json(), option=orjson.OPT_INDENT_2))
        (self._dir / KEYS).write_bytes(orjson.dumps(keys, option=orjson.OPT_INDENT_2))
        (self._dir / CHECKPOINTS).write_bytes(orjson.dumps(notes, option=orjson.OPT_INDENT_2))

    def write_entries(self, entries: Iterable[AuditEntry]) -> None:
        self._entries.write(b"".join(entry_line(e) for e in entries))

    def close(self) -> None:
        """Put the complete bundle at the output path, never replacing anything there; on failure
        remove what was written (:meth:`abort`) and raise."""
        try:
            self._entries.close()
            self._move_into_place()
        except BaseException:
            self.abort()
            raise

    def _move_into_place(self) -> None:
        exists = InvalidInputError(f"{self._out} already exists; a bundle is never overwritten")
        if not is_tar(self._out):
            if self._out.exists() or self._out.is_symlink():
                raise exists
            self._dir.rename(self._out)
            return
        tmp = self._dir / "bundle.tar"
        gz = self._out.name.endswith(("gz", "tgz"))
        with tarfile.open(tmp, "w:gz") if gz else tarfile.open(tmp, "w") as tar:
            for name in (META, KEYS, CHECKPOINTS, ENTRIES):
                tar.add(self._dir / name, arcname=name)
        try:
            os.link(tmp, self._out)  # fails if the output appeared meanwhile: nothing is overwritten
        except FileExistsError:
            raise exists from None
        shutil.rmtree(self._dir)

    def abort(self) -> None:
        """Remove everything written so far; the output path is left as it was."""
        self._entries.close()
        shutil.rmtree(self._dir, ignore_errors=True)


@dataclass
class Bundle:
    """An open bundle: its metadata, keys and notes, and a reader of its entries."""

    meta: BundleMeta
    keys: list[Any]
    notes: list[str]
    _entries: IO[bytes]

    @property
    def entries_file(self) -> IO[bytes]:
        """``entries.jsonl`` as opened (for a reader of its own: :mod:`sealtrail.audit.native`)."""
        return self._entries

    def entries(self, chunk: int | None = None) -> Iterator[list[AuditEntry]]:
        """Entries in file order, ``chunk`` (default :data:`CHUNK`) at a time, read in blocks and
        split into lines (a line longer than :data:`MAX_LINE` is refused); a file cut short or
        corrupt compression is :class:`InvalidInputError`."""
        chunk = chunk or CHUNK
        batch: list[AuditEntry] = []
        append = batch.append
        n = 0
        for lines in _line_blocks(self._entries):
            for line in lines:
                n += 1
                append(entry_of_line(line, n))
                if len(batch) >= chunk:
                    yield batch
                    batch = []
                    append = batch.append
        if batch:
            yield batch


def entry_of_line(line: bytes, n: int) -> AuditEntry:
    """The entry on line ``n``. The usual line, as orjson writes it, is taken apart inline; any
    other, or any the inline path cannot take, goes through :func:`~sealtrail.core.audit.audit_entry`,
    whose checks and messages then apply unchanged."""
    try:
        row = orjson.loads(line)
    except orjson.JSONDecodeError as err:
        raise InvalidInputError(f"{ENTRIES} line {n} is malformed: {err}") from err
    if type(row) is dict and len(row) == 4:
        try:
            index, entry, chain, digest = row["index"], row["entry"], row["chain"], row["payload_digest"]
            if (type(index) is int and index >= 0 and type(entry) is str and type(chain) is str
                    and (digest is None or type(digest) is str)):
                # pybase64's validating decoder accepts a subset of what base64.b64decode(validate=True)
                # does (tests/unit/test_bundle_lines.py), decoded alike; it is several times faster
                return AuditEntry(index, _b64(entry, validate=True), _b64(chain, validate=True), digest)
        except (KeyError, ValueError):
            pass
    try:
        return audit_entry(row)
    except ValueError as err:
        raise InvalidInputError(f"{ENTRIES} line {n} is malformed: {err}") from err


def _line_blocks(file: IO[bytes]) -> Iterator[list[bytes]]:
    """The lines of ``file`` (without their newline), a block at a time, in order; a line longer
    than :data:`MAX_LINE` bytes counting its newline is refused, before more is read."""
    n, rest = 0, b""
    while True:
        try:
            block = file.read(BLOCK)
        except (EOFError, zlib.error, tarfile.TarError) as e:
            raise InvalidInputError(f"{ENTRIES} is cut short or corrupt after line {n}") from e
        if not block:
            if rest:
                if len(rest) > MAX_LINE:
                    raise InvalidInputError(f"{ENTRIES} line {n + 1} is longer than {MAX_LINE} bytes")
                yield [rest]
            return
        lines = (rest + block).split(b"\n")
        rest = lines.pop()
        limit = MAX_LINE - 1  # the newline counts
        if lines and max(map(len, lines)) > limit:
            i = next(i for i, line in enumerate(lines) if len(line) > limit)
            yield lines[:i]
            raise InvalidInputError(f"{ENTRIES} line {n + i + 1} is longer than {MAX_LINE} bytes")
        n += len(lines)
        yield lines
        if len(rest) > MAX_LINE:
            raise InvalidInputError(f"{ENTRIES} line {n + 1} is longer than {MAX_LINE} bytes")


def _load(read: Any, name: str, path: Path) -> Any:
    try:
        return orjson.loads(read(name))
    except (orjson.JSONDecodeError, KeyError, OSError, EOFError, zlib.error, tarfile.TarError) as e:
        raise InvalidInputError(f"{path} is not a complete bundle: no readable {name}") from e


def _meta(doc: Any, path: Path) -> BundleMeta:
    if not isinstance(doc, dict) or doc.get("format") != BUNDLE_FORMAT:
        raise InvalidInputError(f"{path}: {META} is not a {BUNDLE_FORMAT} bundle")
    log, origin, size, at = doc.get("log"), doc.get("origin"), doc.get("size"), doc.get("exported_at", "")
    if not (isinstance(log, str) and isinstance(origin, str) and isinstance(at, str)
            and isinstance(size, int) and not isinstance(size, bool) and size >= 0):
        raise InvalidInputError(f"{path}: {META} lacks log, origin or exported_at strings or an integer size")
    return BundleMeta(log, origin, size, at)


def _regular(path: Path, name: str) -> Path:
    """``path`` / ``name`` if it is a regular file (after symlinks) of at most :data:`MAX_MEMBER`
    bytes, or entries of any size; a FIFO or device would hang or never end."""
    member = path / name
    try:
        st = member.stat()
    except OSError as e:
        raise InvalidInputError(f"{path} is not a complete bundle: no readable {name}") from e
    if not stat.S_ISREG(st.st_mode):
        raise InvalidInputError(f"{path}: {name} is not a regular file")
    if name != ENTRIES and st.st_size > MAX_MEMBER:
        raise InvalidInputError(f"{path}: {name} is larger than {MAX_MEMBER} bytes")
    return member


def _tar_member(tar: tarfile.TarFile, name: str, path: Path) -> IO[bytes]:
    """The regular member ``name`` (once only, at most :data:`MAX_MEMBER` bytes unless entries)."""
    members = [m for m in tar.getmembers() if m.name == name]
    if not members:
        raise InvalidInputError(f"{path} is not a complete bundle: no readable {name}")
    if len(members) > 1:
        raise InvalidInputError(f"{path}: {name} appears {len(members)} times")
    member = members[0]
    if not member.isreg():
        raise InvalidInputError(f"{path}: {name} is not a regular file (a link, device or directory)")
    if name != ENTRIES and member.size > MAX_MEMBER:
        raise InvalidInputError(f"{path}: {name} is larger than {MAX_MEMBER} bytes")
    file = tar.extractfile(member)
    assert file is not None  # a regular member always has a file object
    return file


@contextmanager
def open_bundle(path: Path) -> Iterator[Bundle]:
    """Open a bundle directory or tar for reading.

    Only regular files are read (a FIFO, device or link to one is refused rather than waited on);
    ``bundle.json``, ``keys.json`` and ``checkpoints.json`` are refused above :data:`MAX_MEMBER`
    bytes, and ``entries.jsonl`` is streamed."""
    if path.is_dir():
        header = _header(lambda name: _regular(path, name).read_bytes(), path)
        try:
            entries = _regular(path, ENTRIES).open("rb")
        except OSError as e:
            raise InvalidInputError(f"{path} is not a complete bundle: no readable {ENTRIES}") from e
        with entries:
            yield Bundle(*header, entries)
        return
    if not path.is_file():
        raise InvalidInputError(f"{path} is neither a bundle directory nor a tar file")
    try:
        tar = tarfile.open(path)  # noqa: SIM115 - closed by the `with` below, after the check
        tar.getmembers()  # reads every header: a tar cut short fails here, not half-way
    except (OSError, EOFError, zlib.error, tarfile.TarError) as e:
        raise InvalidInputError(f"{path} is neither a bundle directory nor a readable tar file "
                                f"(cut short or corrupt: {type(e).__name__})") from e
    with tar:
        header = _header(lambda name: _tar_member(tar, name, path).read(), path)
        yield Bundle(*header, _tar_member(tar, ENTRIES, path))


def _header(read: Any, path: Path) -> tuple[BundleMeta, list[Any], list[str]]:
    meta = _meta(_load(read, META, path), path)
    keys, notes = _load(read, KEYS, path), _load(read, CHECKPOINTS, path)
    if not isinstance(keys, list) or not isinstance(notes, list):
        raise InvalidInputError(f"{path}: bundle keys and checkpoints must be lists")
    if not all(isinstance(n, str) for n in notes):
        raise InvalidInputError(f"{path}: {CHECKPOINTS} must be a list of signed notes (strings)")
    return meta, keys, notes
