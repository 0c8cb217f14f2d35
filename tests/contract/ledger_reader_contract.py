"""The ledger-reader contract, run against every adapter (PostgreSQL and SQLite).

Subclass :class:`LedgerReaderContract` and override the ``backend`` fixture with a fresh,
migrated database. Logs are written through the backend's ledger store and signed through its
checkpoint store, then read back only through the reader.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from sealtrail.core.checkpoint import parse_checkpoint
from sealtrail.core.merkle import consistency_proof, inclusion_proof
from sealtrail.core.note import parse_note
from sealtrail.core.tlogproof import verify_proof
from sealtrail.core.verify import (
    TrustedKey,
    TrustedKeys,
    check_consistency,
    check_inclusion,
    verifier_from_vkey,
)
from sealtrail.errors import InvalidInputError, NotFoundError
from services.ledger.checkpointer import Checkpointer
from tests.support.backends import LedgerBackend, LogWriter


async def trusted(backend: LedgerBackend) -> TrustedKeys:
    """The published keys with their windows, as an auditor would trust them."""
    return TrustedKeys(TrustedKey.from_vkey(k.vkey, not_before=k.not_before, not_after=k.not_after)
                       for k in await backend.reader.published_keys())


class LedgerReaderContract:
    """What every :class:`~services.ledger.reader.LedgerReader` adapter guarantees."""

    @pytest.fixture
    def backend(self) -> LedgerBackend:
        raise NotImplementedError("an adapter's test class overrides the backend fixture")

    @pytest.fixture
    async def signed(self, backend: LedgerBackend, tmp_path: Path) -> LogWriter:
        """acme: 37 entries, checkpoint, 26 more, checkpoint; beta: 1 entry, checkpoint."""
        writer = LogWriter(backend)
        checkpointer = Checkpointer(store=backend.checkpoints, key_dir=tmp_path / "keys")
        await checkpointer.ensure_keys()
        await writer.append("acme", 37)
        await checkpointer.tick()
        await writer.append("acme", 26)
        await writer.append("beta", 1)
        await checkpointer.tick()
        return writer

    async def test_proofs_equal_the_in_memory_reference(self, backend: LedgerBackend) -> None:
        """Every inclusion and consistency proof read from storage equals the in-memory reference's,
        for trees of many shapes written in two batches."""
        writer = LogWriter(backend)
        for size in (1, 2, 3, 7, 8, 9, 31, 64):
            log_id = f"s{size}"
            for chunk in (size // 2, size - size // 2):
                if chunk:
                    await writer.append(log_id, chunk)
            ref, reader = writer.reference[log_id], backend.reader
            for i in range(size):
                assert await reader.inclusion_proof(log_id, log_id, i, size) == inclusion_proof(ref, i, size)
            for s1 in range(1, size + 1):
                got = await reader.consistency_proof(log_id, log_id, s1, size)
                assert got == consistency_proof(ref, s1, size)

    async def test_checkpoints_entries_and_proofs_verify(
        self, backend: LedgerBackend, signed: LogWriter
    ) -> None:
        """Checkpoints verify under the published keys; entries are the stored bytes; inclusion,
        consistency and tlog-proof files verify against them."""
        keys = await trusted(backend)
        assert [(lg.log_id, lg.size) for lg in await backend.reader.logs("acme")] == [("acme", 63)]
        latest = await backend.reader.latest_checkpoint("acme", "acme")
        new = keys.verify_checkpoint(latest.note, origin="test/acme").checkpoint
        cps = await backend.reader.checkpoints("acme", "acme", 0, 63)
        assert [c.size for c in cps] == [37, 63] and new.size == 63
        old = parse_checkpoint(parse_note(cps[0].note).text)
        check_consistency(old, new, await backend.reader.consistency_proof("acme", "acme", 37, 63))
        entries = await backend.reader.entries("acme", "acme", 0, 63)
        assert [e.entry for e in entries] == signed.entries["acme"]
        inclusion = await backend.reader.inclusion_proof("acme", "acme", 10, 63)
        check_inclusion(entries[10].entry, 10, inclusion, new)
        verifiers = [verifier_from_vkey(k.vkey) for k in await backend.reader.published_keys()]
        event = uuid.UUID(signed.records["acme"][5].event_id)
        proof_file = await backend.reader.tlog_proof("acme", event)
        assert verify_proof(proof_file, entries[5].entry, verifiers).size == 63

    async def test_other_tenants_see_nothing(self, backend: LedgerBackend, signed: LogWriter) -> None:
        """Another tenant's log looks exactly like a missing one, through every method."""
        reader, event = backend.reader, uuid.UUID(signed.records["acme"][0].event_id)
        assert [lg.log_id for lg in await reader.logs("beta")] == ["beta"]
        assert await reader.logs("gamma") == []
        for call in (reader.latest_checkpoint("beta", "acme"), reader.checkpoints("beta", "acme", 0, 63),
                     reader.entries("beta", "acme", 0, 10), reader.inclusion_proof("beta", "acme", 0, 10),
                     reader.consistency_proof("beta", "acme", 1, 10), reader.tlog_proof("beta", event),
                     reader.entries("acme", "nope", 0, 1)):
            with pytest.raises(NotFoundError):
                await call

    async def test_reads_outside_the_tree_are_refused(
        self, backend: LedgerBackend, signed: LogWriter
    ) -> None:
        """Proof sizes beyond the log, indices outside the tree and oversized ranges are refused."""
        reader = backend.reader
        for call in (reader.inclusion_proof("acme", "acme", 1, 64),
                     reader.inclusion_proof("acme", "acme", 9, 9),
                     reader.consistency_proof("acme", "acme", 0, 63),
                     reader.consistency_proof("acme", "acme", 9, 64),
                     reader.entries("acme", "acme", 5, 4), reader.entries("acme", "acme", 0, 1001)):
            with pytest.raises(InvalidInputError):
                await call

    async def test_unsigned_growth_is_not_yet_provable(
        self, backend: LedgerBackend, signed: LogWriter
    ) -> None:
        """An event logged after the last checkpoint has no tlog-proof yet; the log lists its new size."""
        late = await signed.append("beta", 1)
        with pytest.raises(NotFoundError):
            await backend.reader.tlog_proof("beta", uuid.UUID(late[0].event_id))
        assert [(lg.log_id, lg.size) for lg in await backend.reader.logs("beta")] == [("beta", 2)]
