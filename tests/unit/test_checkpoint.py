"""c2sp.org/tlog-checkpoint bodies: exact format and strict parsing."""

from __future__ import annotations

import base64

import pytest

from sealtrail.core.checkpoint import Checkpoint, format_checkpoint, parse_checkpoint
from sealtrail.errors import NoteError

ROOT = bytes(range(32))
ROOT_B64 = base64.b64encode(ROOT).decode()
# The body of the checkpoint shown in c2sp.org/tlog-checkpoint.
SPEC_BODY = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"


def test_format_is_three_lines() -> None:
    """A checkpoint is origin, decimal size and base64 root, each newline-terminated."""
    assert format_checkpoint("log.example/a", 42, ROOT) == f"log.example/a\n42\n{ROOT_B64}\n"
    assert format_checkpoint("log.example/a", 0, ROOT).split("\n")[1] == "0"


def test_round_trip_and_spec_example() -> None:
    """Formatting and parsing are inverse, and the spec's example body parses."""
    cp = Checkpoint("log.example/a", 123456789, ROOT)
    assert parse_checkpoint(cp.body()) == cp
    spec = parse_checkpoint(SPEC_BODY)
    assert (spec.origin, spec.size, spec.extensions) == ("example.com/behind-the-sofa", 20852163, ())
    assert spec.body() == SPEC_BODY


def test_extension_lines_are_read_but_not_written_by_default() -> None:
    """Parsing keeps non-empty extension lines; the plain formatter never writes any."""
    cp = parse_checkpoint(SPEC_BODY + "ext one\next two\n")
    assert cp.extensions == ("ext one", "ext two")
    assert cp.body() == SPEC_BODY + "ext one\next two\n"
    assert format_checkpoint(cp.origin, cp.size, cp.root) == SPEC_BODY


@pytest.mark.parametrize(
    "body",
    [
        SPEC_BODY[:-1],  # no final newline
        "example.com/x\n12\n",  # no root line
        "\n12\n" + ROOT_B64 + "\n",  # empty origin
        "o\n012\n" + ROOT_B64 + "\n",  # leading zero
        "o\n+12\n" + ROOT_B64 + "\n",  # sign
        "o\n 12\n" + ROOT_B64 + "\n",  # space
        "o\n1_2\n" + ROOT_B64 + "\n",  # underscore, which int() accepts
        "o\n１２\n" + ROOT_B64 + "\n",  # non-ASCII digits, which int() accepts
        "o\n99999999999999999999\n" + ROOT_B64 + "\n",  # too large
        "o\n12\n" + ROOT_B64[:-2] + "\n",  # bad base64
        "o\n12\n" + base64.b64encode(bytes(31)).decode() + "\n",  # 31-byte root
        "o\n12\n" + ROOT_B64 + "\n\n",  # empty extension line
        "o\r\n12\n" + ROOT_B64 + "\n",  # control character in origin
    ],
)
def test_malformed_bodies_are_refused(body: str) -> None:
    """Every malformed body raises NoteError."""
    with pytest.raises(NoteError):
        parse_checkpoint(body)


def test_bad_values_cannot_be_formatted() -> None:
    """Origins with spaces, plus signs or newlines, short roots and negative sizes are not formatted."""
    for origin in ("", "a b", "a+b", "a\nb"):
        with pytest.raises(NoteError):
            format_checkpoint(origin, 1, ROOT)
    with pytest.raises(NoteError):
        format_checkpoint("o", -1, ROOT)
    with pytest.raises(NoteError):
        format_checkpoint("o", 1, ROOT[:31])
