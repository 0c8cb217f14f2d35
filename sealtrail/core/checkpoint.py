"""C2SP checkpoints (c2sp.org/tlog-checkpoint): the note text that commits to a tree head.

::

    <origin>
    <tree size, ASCII decimal, no leading zeroes>
    <base64 root hash>
    [extension lines]

Sealtrail MUST NOT write extension lines; parsing accepts non-empty ones so that foreign
checkpoints can be read. Anything else malformed raises :class:`NoteError`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sealtrail.core.merkle import HASH_SIZE
from sealtrail.core.note import b64decode, b64encode
from sealtrail.errors import NoteError

MAX_TREE_SIZE = 2**63 - 1
_DECIMAL = re.compile(r"(0|[1-9][0-9]*)\Z", re.ASCII)


def check_origin(origin: str) -> None:
    """Raise :class:`NoteError` unless ``origin`` is a valid checkpoint origin line.

    It MUST be non-empty and hold no control characters. Sealtrail's origins also hold no
    Unicode spaces or ``+`` (the spec's SHOULD), so they double as key names.
    """
    if not origin or any(ord(c) < 0x20 or c == "\x7f" or c.isspace() or c == "+" for c in origin):
        raise NoteError("origin must be non-empty without spaces, '+' or control characters")


def parse_decimal(text: str, what: str, *, limit: int = MAX_TREE_SIZE) -> int:
    """Parse an ASCII decimal with no leading zeroes, at most ``limit``; else :class:`NoteError`."""
    if not _DECIMAL.match(text) or len(text) > 19:
        raise NoteError(f"{what} must be an ASCII decimal without leading zeroes")
    value = int(text)
    if value > limit:
        raise NoteError(f"{what} is too large")
    return value


@dataclass(frozen=True)
class Checkpoint:
    """A tree head: the log's origin, its size and its RFC 6962 root hash."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def body(self) -> str:
        """Return the checkpoint note text (what gets signed), final newline included."""
        check_origin(self.origin)
        if not 0 <= self.size <= MAX_TREE_SIZE:
            raise NoteError("tree size out of range")
        if len(self.root) != HASH_SIZE:
            raise NoteError("root hash must be 32 bytes")
        for ext in self.extensions:
            if not ext or any(ord(c) < 0x20 for c in ext):
                raise NoteError("extension lines must be non-empty without control characters")
        lines = [self.origin, str(self.size), b64encode(self.root), *self.extensions]
        return "\n".join(lines) + "\n"


def format_checkpoint(origin: str, size: int, root: bytes) -> str:
    """Return the body of a checkpoint without extension lines, as Sealtrail signs them."""
    return Checkpoint(origin, size, root).body()


def parse_checkpoint(text: str) -> Checkpoint:
    """Parse a checkpoint note text (no signatures); raises :class:`NoteError` if malformed."""
    if not text.endswith("\n"):
        raise NoteError("checkpoint must end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise NoteError("checkpoint needs an origin, a tree size and a root hash")
    origin, size_line, root_line, *extensions = lines
    if not origin or any(ord(c) < 0x20 for c in origin):
        raise NoteError("checkpoint origin must be non-empty")
    size = parse_decimal(size_line, "tree size")
    root = b64decode(root_line, "root hash")
    if len(root) != HASH_SIZE:
        raise NoteError("root hash must be 32 bytes")
    if any(not ext or any(ord(c) < 0x20 for c in ext) for ext in extensions):
        raise NoteError("extension lines must be non-empty")
    return Checkpoint(origin, size, root, tuple(extensions))
