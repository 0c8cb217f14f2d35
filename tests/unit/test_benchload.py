"""The load generator of ``sealtrail bench``: bodies with unique ids that ingest's validator
accepts, and the answer check that refuses a 202 which does not match what was sent."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from sealtrail.cli.benchload import AnswerCheck, BodyTemplate, event_templates
from sealtrail.core.note import Ed25519Signer
from sealtrail.core.receipt import sign_receipts
from sealtrail.core.validation import validate_batch
from sealtrail.errors import BenchmarkError, SignatureError

SIGNER = Ed25519Signer.generate("ingest.test")
DIGEST = "blake3:" + "ab" * 32


def _answer(log: str, ids: list[str], signer: Ed25519Signer = SIGNER) -> bytes:
    receipts = sign_receipts(log, 1_700_000_000_000, [(i, DIGEST) for i in ids], signer)
    accepted = [{"event_id": i, "log": log, "receipt": r} for i, r in zip(ids, receipts, strict=True)]
    return orjson.dumps({"accepted": accepted, "rejected": []})


def test_every_send_carries_new_valid_events_of_about_the_asked_size() -> None:
    """Each send rewrites the counter into every id: all ids of a run differ, the body parses to
    exactly the ids event_ids() names, and every event passes ingest's validation."""
    template = BodyTemplate(event_templates(1024), 50, connection=3, start_ms=1_700_000_000_000, first_counter=7)
    seen: set[str] = set()
    for _ in range(3):
        counter = template.next()
        events = orjson.loads(bytes(template.body))["events"]
        ids = [e["event_id"] for e in events]
        assert ids == template.event_ids(counter) and not seen & set(ids)
        seen.update(ids)
        valid, rejected = validate_batch(events, now=datetime.now(UTC))
        assert rejected == [] and len(valid) == 50
        assert all(1000 <= len(orjson.dumps(e)) <= 1048 for e in events)
    assert len(seen) == 150


def test_a_body_holds_one_to_4096_events() -> None:
    with pytest.raises(BenchmarkError):
        BodyTemplate(event_templates(512), 4097, connection=0, start_ms=0)


def test_the_check_learns_the_log_and_refuses_mismatches() -> None:
    """A full check needs exactly the sent ids, one log throughout and a receipt under a known key."""
    ids = [f"0190a0b0-0000-7000-8000-{i:012x}" for i in range(4)]
    check = AnswerCheck([SIGNER.verifier()], every=1)
    assert check.accepted(_answer("acme", ids), ids) == 4 and check.log == "acme" and check.checked == 1
    for answer, error, why in [
        (_answer("acme", ids[:3]), BenchmarkError, "exactly the events"),
        (_answer("other", ids), BenchmarkError, "not only acme"),
        (_answer("acme", ids, Ed25519Signer.generate("ingest.test")), SignatureError, "not signed by any known key"),
    ]:
        with pytest.raises(error, match=why):
            check.accepted(answer, ids)


def test_only_one_answer_in_every_is_parsed() -> None:
    """Between full checks the count is the number of receipts, whatever the answer holds."""
    ids = [f"0190a0b0-0000-7000-8000-{i:012x}" for i in range(2)]
    check = AnswerCheck([SIGNER.verifier()], every=3, log="acme")
    assert check.accepted(_answer("acme", ids), ids) == 2
    assert check.accepted(_answer("acme", ids[:1]), ids) == 1  # not checked: the count tells
    assert check.checked == 1
