"""The pure witness checks of c2sp.org/tlog-witness (sealtrail.core.witness), one refusal at a time."""

from __future__ import annotations

import pytest

from sealtrail.core.cosignature import CosignatureSigner, verify_cosignature
from sealtrail.core.note import Ed25519Signer, b64encode, parse_note
from sealtrail.core.witness import (
    MAX_BODY_BYTES,
    LogRecord,
    check_add_checkpoint,
    cosign,
    format_add_checkpoint,
    parse_add_checkpoint,
    recorded_note,
)
from sealtrail.errors import (
    InvalidInputError,
    InvalidProofError,
    NotFoundError,
    SignatureError,
    WitnessSizeError,
)
from tests.support.witnesslog import WitnessedLog

T = 1_765_000_000


def _record(log: WitnessedLog, size: int = 0) -> LogRecord:
    return LogRecord(log.origin, (log.vkey,), size, log.root(size) if size else b"")


def _check(body: bytes, record: LogRecord | None) -> None:
    check_add_checkpoint(parse_add_checkpoint(body), record)


def test_first_checkpoint_is_accepted_and_cosigned() -> None:
    """Old size 0, no proof, a signed checkpoint: accepted, and the cosignature verifies with a timestamp."""
    log, witness = WitnessedLog(10), CosignatureSigner.generate("witness.example/w1")
    accepted = check_add_checkpoint(parse_add_checkpoint(log.body(0, 10)), _record(log))
    assert (accepted.checkpoint.size, accepted.checkpoint.root) == (10, log.root(10))
    sig = cosign(accepted, witness, T)
    assert verify_cosignature(accepted.text.encode(), sig, witness.verifier()) == T
    note = parse_note(recorded_note(accepted, sig))
    assert [s.name for s in note.signatures] == [log.origin, "witness.example/w1"]


def test_extension_with_a_proof_is_accepted() -> None:
    """From a recorded size, a correct RFC 6962 consistency proof is accepted; the same head again too."""
    log = WitnessedLog(40)
    for old, new in [(1, 40), (7, 8), (16, 40), (39, 40), (40, 40)]:
        check_add_checkpoint(parse_add_checkpoint(log.body(old, new)), _record(log, old))


def test_unknown_origin_is_404() -> None:
    """No record for the origin: NotFoundError."""
    with pytest.raises(NotFoundError):
        _check(WitnessedLog(3).body(0, 3), None)


def test_unsigned_or_wrongly_signed_is_403() -> None:
    """A checkpoint signed only by another key, or with a bad line from the log's key, is refused."""
    log = WitnessedLog(3)
    with pytest.raises(SignatureError):
        _check(log.body(0, 3, key=Ed25519Signer.generate(log.origin)), _record(log))
    note = log.signed(3)
    raw = bytearray(note.encode())
    raw[-5] = ord("A") if raw[-5] != ord("A") else ord("B")
    with pytest.raises((SignatureError, InvalidInputError)):
        _check(b"old 0\n\n" + bytes(raw), _record(log))


def test_old_size_other_than_recorded_is_409_with_the_size() -> None:
    """A stale or invented old size gets the witness's size back."""
    log = WitnessedLog(20)
    with pytest.raises(WitnessSizeError) as info:
        _check(log.body(5, 20), _record(log, 10))
    assert info.value.size == 10


def test_old_size_above_checkpoint_is_400() -> None:
    """An old size past the checkpoint's size is malformed."""
    log = WitnessedLog(20)
    with pytest.raises(InvalidInputError):
        _check(format_add_checkpoint(20, [], log.signed(10)), _record(log, 20))


def test_rollback_is_refused() -> None:
    """A smaller checkpoint than the recorded one is never cosigned: 409 or 400 whatever old size it names."""
    log = WitnessedLog(20)
    with pytest.raises(WitnessSizeError):
        _check(log.body(0, 10), _record(log, 20))
    with pytest.raises(InvalidInputError):
        _check(format_add_checkpoint(20, [], log.signed(10)), _record(log, 20))


def test_fork_at_the_same_size_is_422() -> None:
    """Same size, other root: refused."""
    log = WitnessedLog(20)
    fork = log.fork(10, 20)
    with pytest.raises(InvalidProofError):
        _check(fork.body(20, 20), _record(log, 20))


def test_fork_with_a_bad_proof_is_422() -> None:
    """A fork that extends: its proof cannot lead from the recorded root."""
    log = WitnessedLog(20)
    fork = log.fork(8, 30)
    with pytest.raises(InvalidProofError):
        _check(fork.body(10, 30), _record(log, 10))
    with pytest.raises(InvalidProofError):
        _check(format_add_checkpoint(10, log.proof(10, 20)[:-1], log.signed(20)), _record(log, 10))


def test_non_empty_proof_from_zero_and_bad_empty_tree_are_422() -> None:
    """Old size 0 needs an empty proof; a size-0 checkpoint needs the empty root."""
    log = WitnessedLog(20)
    with pytest.raises(InvalidProofError):
        _check(format_add_checkpoint(0, log.proof(5, 20), log.signed(20)), _record(log))
    from sealtrail.core.checkpoint import Checkpoint
    from sealtrail.core.note import sign_note

    bad_empty = sign_note(Checkpoint(log.origin, 0, log.root(3)).body(), [log.key])
    with pytest.raises(InvalidProofError):
        _check(format_add_checkpoint(0, [], bad_empty), _record(log))
    check_add_checkpoint(parse_add_checkpoint(log.body(0, 0)), _record(log))


@pytest.mark.parametrize("body", [
    b"",
    b"old 0\n",
    b"new 0\n\nx\n",
    b"old 01\n\n",
    b"old -1\n\n",
    b"old 0\nnot base64!\n\n",
    b"old 0\n" + b64encode(b"short").encode() + b"\n\n",
    b"old 0\n\nexample.org/log\n1\n",
    b"\xff\xfe",
])
def test_malformed_bodies_are_400(body: bytes) -> None:
    """Anything that is not old line, proof lines, empty line, signed checkpoint is InvalidInputError."""
    with pytest.raises(InvalidInputError):
        parse_add_checkpoint(body)


def test_too_many_proof_lines_and_too_large_bodies_are_400() -> None:
    """At most 63 proof lines; bodies over the cap are refused before parsing."""
    log = WitnessedLog(3)
    lines = "".join(b64encode(bytes(32)) + "\n" for _ in range(64))
    with pytest.raises(InvalidInputError, match="63"):
        parse_add_checkpoint(f"old 1\n{lines}\n".encode() + log.signed(3).encode())
    with pytest.raises(InvalidInputError, match="larger"):
        parse_add_checkpoint(b"old 0\n" + b"A" * MAX_BODY_BYTES + b"\n\n")


def test_cosignature_needs_a_timestamp() -> None:
    """A witness cosignature MUST NOT omit the timestamp."""
    from sealtrail.errors import NoteError

    log = WitnessedLog(3)
    accepted = check_add_checkpoint(parse_add_checkpoint(log.body(0, 3)), _record(log))
    with pytest.raises(NoteError):
        cosign(accepted, CosignatureSigner.generate("w"), 0)


def test_request_round_trip() -> None:
    """format_add_checkpoint and parse_add_checkpoint agree."""
    log = WitnessedLog(17)
    req = parse_add_checkpoint(log.body(5, 17))
    assert (req.old_size, list(req.proof), req.checkpoint.size) == (5, log.proof(5, 17), 17)
