"""The checkpoint-store contract, run against every adapter through the checkpointer.

Subclass :class:`CheckpointStoreContract` and override the ``backend`` fixture with a fresh,
migrated database.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sealtrail.errors import InconsistentCheckpointError
from services.ledger import metrics
from services.ledger.checkpointer import Checkpointer
from services.ledger.signing import load_active, rotate
from tests.contract.ledger_reader_contract import trusted
from tests.support.backends import LedgerBackend, LogWriter


def _delays() -> tuple[float, float]:
    """(count, sum) of the checkpoint delay histogram."""
    samples = {s.name: s.value for s in metrics.CHECKPOINT_DELAY.collect()[0].samples}
    return samples["sealtrail_ledger_checkpoint_delay_seconds_count"], samples[
        "sealtrail_ledger_checkpoint_delay_seconds_sum"]


class CheckpointStoreContract:
    """What every :class:`~services.ledger.ports.CheckpointStore` adapter guarantees."""

    @pytest.fixture
    def backend(self) -> LedgerBackend:
        raise NotImplementedError("an adapter's test class overrides the backend fixture")

    @pytest.fixture
    async def checkpointer(self, backend: LedgerBackend, tmp_path: Path) -> Checkpointer:
        cp = Checkpointer(store=backend.checkpoints, key_dir=tmp_path / "keys")
        await cp.ensure_keys()
        return cp

    async def test_each_grown_log_is_signed_once(
        self, backend: LedgerBackend, checkpointer: Checkpointer
    ) -> None:
        """A round signs every grown log once; a round without growth signs nothing."""
        writer = LogWriter(backend)
        await writer.append("acme", 5)
        await writer.append("beta", 2)
        assert await backend.checkpoints.grown_logs() == ["acme", "beta"]
        assert len(await checkpointer.tick()) == 2
        assert await checkpointer.tick() == []
        await writer.append("beta", 1)
        notes = await checkpointer.tick()
        assert len(notes) == 1 and "\n3\n" in notes[0]
        assert await backend.raw.count("checkpoints") == 3

    async def test_each_signature_observes_its_delay_from_receipt(
        self, backend: LedgerBackend, checkpointer: Checkpointer
    ) -> None:
        """A signed checkpoint observes the seconds from ingest receiving the first entry it newly
        covers (by index) to its signature (sealtrail_ledger_checkpoint_delay_seconds)."""
        writer = LogWriter(backend)
        now = datetime.now(UTC)
        await writer.append("acme", 3, received_at=now - timedelta(seconds=40))
        await writer.append("acme", 2)
        count, total = _delays()
        await checkpointer.tick()
        count1, total1 = _delays()
        assert count1 == count + 1 and 40 <= total1 - total < 50
        await writer.append("acme", 2, received_at=now - timedelta(seconds=7))
        await writer.append("acme", 1, received_at=now - timedelta(seconds=90))  # by index after, whatever its time
        await checkpointer.tick()
        count2, total2 = _delays()
        assert count2 == count1 + 1 and 7 <= total2 - total1 < 17

    async def test_witness_cosignatures_join_the_stored_note(
        self, backend: LedgerBackend, checkpointer: Checkpointer
    ) -> None:
        """add_cosignatures adds each line once to the note of that size and keeps its text and lines;
        consistency_proof proves one stored size extends another; an unknown size changes nothing."""
        from sealtrail.core.checkpoint import parse_checkpoint
        from sealtrail.core.cosignature import CosignatureSigner
        from sealtrail.core.merkle import verify_consistency
        from sealtrail.core.note import NoteSignature, parse_note

        writer = LogWriter(backend)
        await writer.append("acme", 4)
        [first] = await checkpointer.tick()
        await writer.append("acme", 5)
        await checkpointer.tick()
        witness = CosignatureSigner.generate("witness.example/w1")
        line = NoteSignature(witness.name, witness.key_id, witness.sign_at(parse_note(first).text.encode(), 7))
        for _ in range(2):
            assert await backend.checkpoints.add_cosignatures("acme", 4, [line])
        assert not await backend.checkpoints.add_cosignatures("acme", 5, [line])
        stored = [c.note for c in await backend.reader.checkpoints("acme", "acme", 4, 9) if c.size == 4]
        assert stored == [first + line.line()]
        latest = await backend.reader.latest_checkpoint("acme", "acme")
        proof = await backend.checkpoints.consistency_proof("acme", 4, 9)
        root4, root9 = (parse_checkpoint(parse_note(n).text).root for n in (first, latest.note))
        verify_consistency(4, 9, proof, root4, root9)
        assert await backend.checkpoints.latest_notes() == [("acme", latest.note)]

    async def test_concurrent_rounds_sign_each_size_once(
        self, backend: LedgerBackend, checkpointer: Checkpointer, tmp_path: Path
    ) -> None:
        """Two checkpointers racing over the same logs store one checkpoint per log and size."""
        writer = LogWriter(backend)
        for log_id in ("a1", "a2", "a3"):
            await writer.append(log_id, 4)
        other = Checkpointer(store=backend.checkpoints, key_dir=tmp_path / "keys")
        results = await asyncio.gather(checkpointer.tick(), other.tick(), checkpointer.tick())
        assert sum(len(r) for r in results) == 3
        assert await backend.raw.count("checkpoints") == 3

    async def test_a_damaged_tree_is_never_signed(
        self, backend: LedgerBackend, checkpointer: Checkpointer
    ) -> None:
        """When the stored tree no longer reproduces the head, the round refuses and stores nothing."""
        writer = LogWriter(backend)
        await writer.append("acme", 6)
        await checkpointer.tick()
        await writer.append("acme", 3)
        await backend.raw.damage_leaf("acme", 8)
        with pytest.raises(InconsistentCheckpointError):
            await checkpointer.tick()
        assert await backend.raw.count("checkpoints") == 1

    async def test_rotation_keeps_old_checkpoints_verifiable(
        self, backend: LedgerBackend, checkpointer: Checkpointer, tmp_path: Path
    ) -> None:
        """After a rotation both key pairs are published with windows, and checkpoints signed
        before and after it verify under them."""
        writer = LogWriter(backend)
        await writer.append("acme", 3)
        await checkpointer.tick()
        before = await load_active(backend.checkpoints, key_dir=tmp_path / "keys")
        await rotate(backend.checkpoints, key_dir=tmp_path / "keys")
        after = await load_active(backend.checkpoints, key_dir=tmp_path / "keys")
        assert before is not None and after is not None and before.signer.key_id != after.signer.key_id
        await writer.append("acme", 3)
        await checkpointer.tick()
        published = await backend.reader.published_keys()
        assert len(published) == 4 and sum(k.not_after is None for k in published) == 2
        keys = await trusted(backend)
        cps = await backend.reader.checkpoints("acme", "acme", 0, 6)
        assert [keys.verify_checkpoint(c.note).checkpoint.size for c in cps] == [3, 6]
