"""Only entries a signed checkpoint covers are verified: nothing beyond the latest checkpoint counts."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
import pytest

from sealtrail.audit import audit_bundle, audit_live
from sealtrail.audit.bundle import BundleMeta, BundleWriter
from sealtrail.errors import VerificationError
from tests.unit.test_audit import ERASURE, ORIGIN, Log
from tests.unit.test_audit_export import FakeQueryApi


def _erased_without_signed_erasure() -> Log:
    """12 signed entries, entry 0's payload (Alice's) deleted, and an erasure event naming Alice
    at index 12: beyond the checkpoint at 12, so signed by nothing."""
    log = Log(12, [ERASURE])
    log.present.pop(0)
    return log


def test_a_bundle_entry_beyond_its_checkpoint_is_refused_by_index(tmp_path: Path) -> None:
    """The reviewer's forgery (t5.py): an unsigned erasure appended after the latest checkpoint
    would explain a deleted payload. The bundle is refused, naming entry 12."""
    log = _erased_without_signed_erasure()
    writer = BundleWriter(tmp_path / "b")
    writer.write_header(BundleMeta("acme", ORIGIN, 12, ""), log.published(), [log.note(12)])
    writer.write_entries(log.audit_entries())
    writer.close()
    with pytest.raises(VerificationError, match="entry 12 is beyond the latest checkpoint") as e:
        audit_bundle(tmp_path / "b")
    assert e.value.index == 12


class GrownLog(FakeQueryApi):
    """A log whose latest checkpoint is at ``signed``; the entries route serves what is asked for,
    or, when ``append`` is set, one entry more on the page that reaches ``signed``."""

    def __init__(self, log: Log, signed: int, *, append: bool = False) -> None:
        super().__init__(log)
        self.signed, self.append = signed, append

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/v1/logs/acme/checkpoints":
            return httpx.Response(200, json={"checkpoints": [{"note": self.log.note(self.signed)}], "next": None})
        if path == "/v1/logs/acme/entries" and self.append:
            start, end = int(request.url.params["start"]), int(request.url.params["end"])
            rows = [{"index": e.index, "entry": base64.b64encode(e.entry).decode(),
                     "chain": base64.b64encode(e.chain).decode(), "payload_digest": e.payload_digest}
                    for e in self.log.audit_entries()[start:end + 1]]
            return httpx.Response(200, json={"entries": rows})
        return super().__call__(request)


async def _live(api: FakeQueryApi) -> object:
    async with httpx.AsyncClient(base_url="http://q", transport=httpx.MockTransport(api)) as http:
        return await audit_live(http, "acme")


async def test_live_entries_beyond_the_checkpoint_explain_nothing() -> None:
    """Live: the erasure at index 12 is not read (the checkpoint is at 12), so entry 0's missing
    payload is unexplained; a server slipping it into the last page is refused by its index."""
    log = _erased_without_signed_erasure()
    with pytest.raises(VerificationError, match="payload of entry 0 is missing"):
        await _live(GrownLog(log, 12))
    with pytest.raises(VerificationError, match="entry 12 is beyond the latest checkpoint"):
        await _live(GrownLog(log, 12, append=True))


async def test_a_log_that_grew_past_its_checkpoint_verifies_up_to_it() -> None:
    """An honest log with entries after its latest checkpoint verifies the checkpointed prefix."""
    report = await _live(GrownLog(Log(15), 12))
    assert getattr(report, "entries", None) == 12
