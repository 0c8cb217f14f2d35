"""The log audit of ``sealtrail verify``: checkpoints, entries, and payload presence explained."""

from __future__ import annotations

import pytest

from sealtrail.core import merkle
from sealtrail.core.audit import AuditEntry, LogAudit, trusted_keys
from sealtrail.core.canonical import canonical_json
from sealtrail.core.chain import chain_fold, chain_seed
from sealtrail.core.checkpoint import Checkpoint
from sealtrail.core.cosignature import CosignatureSigner
from sealtrail.core.note import Ed25519Signer, sign_note
from sealtrail.errors import VerificationError

ORIGIN = "sealtrail.example/log/acme"
PERIOD, OLD_PERIOD, ALICE = "a" * 32, "b" * 32, "c" * 32


def _digest(i: int) -> str:
    return "blake3:" + f"{i:064x}"


class Log:
    """Entries 0..n-1 sealed with PERIOD (and ALICE for every third), plus optional system events."""

    def __init__(self, n: int, extra: list[dict[str, object]] = ()) -> None:  # type: ignore[assignment]
        headers: list[dict[str, object]] = []
        for i in range(n):
            keys = [PERIOD, ALICE] if i % 3 == 0 else [PERIOD]
            if i < 4:
                keys = [OLD_PERIOD]
            headers.append({"type": "tool_call", "key_ids": keys, "payload_digest": _digest(i), "index": i})
        for j, h in enumerate(extra):
            headers.append({**h, "key_ids": [PERIOD], "payload_digest": _digest(n + j), "index": n + j})
        self.headers = headers
        self.entries = [canonical_json(h) for h in headers]
        self.chains = chain_fold(chain_seed(ORIGIN), merkle.leaf_hashes(self.entries))
        self.store = merkle.MemoryNodeStore()
        self.store.add_runs(merkle.CompactRange().extend(merkle.leaf_hashes(self.entries)))
        self.key = Ed25519Signer.generate("sealtrail.example/ledger")
        self.clock = CosignatureSigner.generate("sealtrail.example/ledger-clock")
        self.present = {i: _digest(i) for i in range(len(headers))}

    def note(self, size: int, key: Ed25519Signer | None = None) -> str:
        body = Checkpoint(ORIGIN, size, merkle.root_at(self.store, size)).body()
        return sign_note(body, [key or self.key, self.clock.at(1_700_000_000)])

    def published(self) -> list[dict[str, object]]:
        return [{"purpose": "checkpoint", "vkey": self.key.verifier().vkey(), "not_before": None, "not_after": None},
                {"purpose": "cosign", "vkey": self.clock.verifier().vkey(), "not_before": None, "not_after": None},
                {"purpose": "erasure-receipt", "vkey": Ed25519Signer.generate("q").verifier().vkey(),
                 "not_before": None, "not_after": None}]

    def audit_entries(self) -> list[AuditEntry]:
        return [AuditEntry(i, e, c, self.present.get(i)) for i, (e, c) in enumerate(zip(self.entries, self.chains,
                                                                                          strict=True))]

    def run(self, notes: list[str] | None = None, entries: list[AuditEntry] | None = None) -> LogAudit:
        size = len(self.entries)
        audit = LogAudit(trusted_keys(self.published()), ORIGIN, notes or [self.note(size // 2), self.note(size)])
        page = entries if entries is not None else self.audit_entries()
        for pos in range(0, len(page), 5):
            audit.feed(page[pos:pos + 5])
        return audit


ERASURE = {"type": "erasure", "erased_key_ids": [ALICE], "request_ref": "DSR-1", "legal_basis": "gdpr.art17"}
RETENTION = {"type": "retention", "period_key_id": OLD_PERIOD, "period": "2024-01"}


def test_intact_log_with_every_payload_present_verifies() -> None:
    """An intact log verifies and the report counts entries, checkpoints and payloads."""
    log = Log(20)
    report = log.run().finish()
    assert (report.entries, report.checkpoints, report.payloads_present) == (20, 2, 20)
    assert "20 entries, 2 checkpoints" in report.summary()


def test_payloads_gone_with_an_explaining_event_are_counted_not_failed() -> None:
    """Payloads whose subject key an erasure event names, or whose period key a retention event
    names, may be missing; the report counts them as erased and expired."""
    log = Log(20, [ERASURE, RETENTION])
    for i in range(20):
        if i < 4 or i % 3 == 0:
            log.present.pop(i)
    report = log.run().finish()
    assert (report.payloads_erased, report.payloads_expired) == (5, 4)
    assert (report.erasure_events, report.retention_events) == (1, 1)


def test_a_missing_payload_without_explanation_names_its_index() -> None:
    """A payload gone without an erasure or retention event fails at its index (the smallest)."""
    log = Log(20, [ERASURE])
    log.present.pop(3)  # old period, but no retention event
    log.present.pop(7)  # no subject key, nothing explains it
    with pytest.raises(VerificationError) as e:
        log.run().finish()
    assert e.value.index == 3 and "entry 3" in str(e.value)


def test_an_altered_payload_fails_at_once() -> None:
    """A stored payload whose digest differs from the entry's payload_digest names the entry."""
    log = Log(12)
    log.present[5] = _digest(99)
    with pytest.raises(VerificationError) as e:
        log.run()
    assert e.value.index == 5


@pytest.mark.parametrize("tamper", ["edit", "drop", "swap", "truncate"])
def test_tampered_entries_name_the_first_bad_index(tamper: str) -> None:
    """An edited byte, a deleted entry, two swapped entries and a truncated log each fail and
    name the first index that is wrong."""
    log = Log(20)
    entries = log.audit_entries()
    if tamper == "edit":
        entries[6] = entries[6].replace(entry=entries[6].entry.replace(b"tool_call", b"tool_cell"))
    elif tamper == "drop":
        del entries[6]
    elif tamper == "swap":
        entries[6], entries[9] = (entries[9].replace(index=6), entries[6].replace(index=9))
    else:
        entries = entries[:6]
    with pytest.raises(VerificationError) as e:
        log.run(entries=entries).finish()
    assert e.value.index == 6


def test_a_checkpoint_signed_by_another_key_is_named_by_its_size() -> None:
    """A checkpoint replaced by one signed with an unpublished key fails, naming its tree size."""
    log = Log(20)
    forged = log.note(10, key=Ed25519Signer.generate("sealtrail.example/ledger"))
    with pytest.raises(VerificationError, match="checkpoint at tree size 10"):
        log.run(notes=[forged, log.note(20)])
