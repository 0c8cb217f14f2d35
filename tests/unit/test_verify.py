"""The verifier API: trusted keys with rotation windows, proofs, and whole runs of entries."""

from __future__ import annotations

import pytest

from sealtrail.core import merkle
from sealtrail.core.chain import chain_fold, chain_seed
from sealtrail.core.checkpoint import Checkpoint
from sealtrail.core.cosignature import CosignatureSigner
from sealtrail.core.note import Ed25519Signer, NoteSignature, add_signatures, sign_note
from sealtrail.core.verify import (
    RunVerifier,
    TrustedKey,
    TrustedKeys,
    check_consistency,
    check_inclusion,
    verifier_from_vkey,
    verify_proof_file,
    verify_run,
)
from sealtrail.errors import (
    ChainMismatchError,
    InconsistentCheckpointError,
    InvalidInputError,
    InvalidProofError,
    NoteError,
    RootMismatchError,
    SequenceGapError,
    SignatureError,
    VerificationError,
)
from tests.unit.logbuilder import T0, SmallLog

LOG = SmallLog(40)
ROTATE = T0 + 1000


def _keys(log: SmallLog, **windows: tuple[int | None, int | None]) -> list[TrustedKey]:
    log_nb, log_na = windows.get("log", (None, None))
    co_nb, co_na = windows.get("cosigner", (None, None))
    return [
        TrustedKey(log.log_key.verifier(), log_nb, log_na),
        TrustedKey(log.cosigner.verifier(), co_nb, co_na),
    ]


# --- checkpoints and keys ----------------------------------------------------------------------


def test_vkeys_of_both_types_parse() -> None:
    """verifier_from_vkey accepts log (0x01) and cosigner (0x04) vkeys and refuses others."""
    assert verifier_from_vkey(LOG.log_key.verifier().vkey()) == LOG.log_key.verifier()
    assert verifier_from_vkey(LOG.cosigner.verifier().vkey()) == LOG.cosigner.verifier()
    with pytest.raises(NoteError):
        verifier_from_vkey("name+00000000+AgAA")


def test_checkpoint_with_log_signature_and_cosignature_verifies() -> None:
    """A signed and cosigned checkpoint verifies and reports its origin, size, time and signers."""
    result = TrustedKeys.from_vkeys(LOG.vkeys()).verify_checkpoint(LOG.signed(), origin=LOG.origin)
    assert result.checkpoint == LOG.checkpoint()
    assert result.timestamp == T0
    assert result.log_keys == (LOG.origin,) and result.cosigners == (LOG.origin + "/clock",)


def test_cosignature_is_required_when_a_cosigner_is_trusted() -> None:
    """With a trusted cosigner, a checkpoint signed only by the log key is refused."""
    only_log = sign_note(LOG.checkpoint().body(), [LOG.log_key])
    with pytest.raises(SignatureError):
        TrustedKeys.from_vkeys(LOG.vkeys()).verify_checkpoint(only_log)
    untimed = TrustedKeys.from_vkeys(LOG.vkeys()[:1]).verify_checkpoint(only_log)
    assert untimed.timestamp is None


def test_log_signature_is_always_required() -> None:
    """A checkpoint with only a cosignature is refused, even though the cosigner is trusted."""
    only_cosigned = sign_note(LOG.checkpoint().body(), [LOG.cosigner.at(T0)])
    with pytest.raises(SignatureError):
        TrustedKeys.from_vkeys(LOG.vkeys()).verify_checkpoint(only_cosigned)


def test_unknown_signatures_are_ignored_and_bad_trusted_ones_reject() -> None:
    """Extra lines from unknown keys do not matter; a failing line from a trusted key rejects."""
    keys = TrustedKeys.from_vkeys(LOG.vkeys())
    stranger = CosignatureSigner.generate("witness.example")
    keys.verify_checkpoint(add_signatures(LOG.signed(), [stranger.at(T0)]))
    forged = NoteSignature(LOG.log_key.name, LOG.log_key.key_id, bytes(64)).line()
    with pytest.raises(SignatureError):
        keys.verify_checkpoint(LOG.signed() + forged)
    with pytest.raises(VerificationError):
        keys.verify_checkpoint(LOG.signed(), origin="other.example/log")


def test_rotation_windows() -> None:
    """Each key is honoured only inside [not_before, not_after) at the cosigned time."""
    new_log = Ed25519Signer.generate(LOG.origin)
    keys = TrustedKeys(
        [
            TrustedKey(LOG.log_key.verifier(), None, ROTATE),
            TrustedKey(new_log.verifier(), ROTATE, None),
            TrustedKey(LOG.cosigner.verifier()),
        ]
    )
    assert keys.verify_checkpoint(LOG.signed(timestamp=ROTATE - 1)).log_keys == (LOG.origin,)
    assert keys.verify_checkpoint(LOG.signed(timestamp=ROTATE, log_key=new_log)).timestamp == ROTATE
    with pytest.raises(SignatureError):  # old key after its window
        keys.verify_checkpoint(LOG.signed(timestamp=ROTATE))
    with pytest.raises(SignatureError):  # new key before its window
        keys.verify_checkpoint(LOG.signed(timestamp=ROTATE - 1, log_key=new_log))


def test_cosigner_rotation_windows() -> None:
    """A cosignature made outside its cosigner key's window gives no trusted time."""
    keys = TrustedKeys(_keys(LOG, cosigner=(T0, ROTATE)))
    keys.verify_checkpoint(LOG.signed(timestamp=T0))
    with pytest.raises(SignatureError):
        keys.verify_checkpoint(LOG.signed(timestamp=ROTATE))
    with pytest.raises(SignatureError):
        keys.verify_checkpoint(LOG.signed(timestamp=T0 - 1))


def test_windowed_log_key_needs_a_cosigned_time() -> None:
    """Without a trusted cosigner, a log key with a window cannot be honoured."""
    only_log = sign_note(LOG.checkpoint().body(), [LOG.log_key])
    keys = TrustedKeys([TrustedKey(LOG.log_key.verifier(), T0, None)])
    with pytest.raises(SignatureError):
        keys.verify_checkpoint(only_log)


def test_key_set_rules() -> None:
    """A key set must not be empty or list one key twice."""
    with pytest.raises(InvalidInputError):
        TrustedKeys([])
    with pytest.raises(InvalidInputError):
        TrustedKeys.from_vkeys([LOG.vkeys()[0], LOG.vkeys()[0]])


# --- proofs ------------------------------------------------------------------------------------


def test_inclusion_and_consistency_checks() -> None:
    """check_inclusion and check_consistency accept true statements and refuse false ones."""
    proof = merkle.inclusion_proof(LOG.store, 17, 30)
    check_inclusion(LOG.entries[17], 17, proof, LOG.checkpoint(30))
    with pytest.raises(InvalidProofError):
        check_inclusion(LOG.entries[18], 17, proof, LOG.checkpoint(30))
    cons = merkle.consistency_proof(LOG.store, 13, 40)
    check_consistency(LOG.checkpoint(13), LOG.checkpoint(40), cons)
    check_consistency(LOG.checkpoint(0), LOG.checkpoint(40), [])
    forked = Checkpoint(LOG.origin, 40, merkle.leaf_hash(b"fork"))
    with pytest.raises(InconsistentCheckpointError):
        check_consistency(LOG.checkpoint(13), forked, cons)
    with pytest.raises(InconsistentCheckpointError):
        check_consistency(
            LOG.checkpoint(13), Checkpoint("other.example/log", 40, LOG.checkpoint().root), cons
        )
    with pytest.raises(InconsistentCheckpointError):
        check_consistency(Checkpoint(LOG.origin, 0, bytes(32)), LOG.checkpoint(40), [])


def test_proof_file_against_trusted_keys() -> None:
    """A proof file verifies for its entry under trusted keys, and not for another entry."""
    keys = TrustedKeys.from_vkeys(LOG.vkeys())
    result = verify_proof_file(LOG.proof_file(9, 25, extra=b"x"), LOG.entries[9], keys)
    assert (result.index, result.extra, result.checkpoint.checkpoint.size) == (9, b"x", 25)
    with pytest.raises(InvalidProofError):
        verify_proof_file(LOG.proof_file(9, 25), LOG.entries[10], keys)


# --- runs --------------------------------------------------------------------------------------


def _run(entries: list[bytes], chains: list[bytes], checkpoints: list[Checkpoint] | None = None) -> int:
    """Verify and return the failing index."""
    with pytest.raises(VerificationError) as info:
        verify_run(entries, chains, checkpoints or [LOG.checkpoint()])
    assert info.value.index is not None
    return info.value.index


def test_intact_run_verifies() -> None:
    """The stored log verifies against its checkpoints, from lists and from plain iterators."""
    cps = [LOG.checkpoint(s) for s in (1, 7, 8, 33, 40)]
    result = verify_run(LOG.entries, LOG.chains, cps)
    assert (result.entries, result.checkpoints, result.chain_head) == (40, 5, LOG.chains[-1])
    assert result.tree.root() == LOG.checkpoint().root
    assert verify_run(iter(LOG.entries), iter(LOG.chains), cps, indices=iter(range(40))).entries == 40


def test_edited_entry_is_named() -> None:
    """An edited entry fails its chain value at its own index."""
    entries = list(LOG.entries)
    entries[12] = entries[12].replace(b"search", b"delete")
    assert _run(entries, LOG.chains) == 12
    with pytest.raises(ChainMismatchError):
        verify_run(entries, LOG.chains, LOG.checkpoint())


def test_deleted_entry_is_named() -> None:
    """Deleting an entry with its chain value fails at the index it vacated."""
    entries = LOG.entries[:20] + LOG.entries[21:]
    chains = LOG.chains[:20] + LOG.chains[21:]
    assert _run(entries, chains) == 20
    with pytest.raises(SequenceGapError) as info:
        verify_run(entries, chains, LOG.checkpoint(), indices=[*range(20), *range(21, 40)])
    assert info.value.index == 20


def test_inserted_entry_is_named() -> None:
    """An inserted entry (with a made-up chain value) fails where it was inserted."""
    entries = [*LOG.entries[:5], b'{"index":5,"forged":true}', *LOG.entries[5:]]
    chains = [*LOG.chains[:5], bytes(32), *LOG.chains[5:]]
    assert _run(entries, chains) == 5


def test_swapped_entries_are_named() -> None:
    """Swapping two neighbours (entries and chain values) fails at the first of them."""
    entries, chains = list(LOG.entries), list(LOG.chains)
    entries[30], entries[31] = entries[31], entries[30]
    chains[30], chains[31] = chains[31], chains[30]
    assert _run(entries, chains) == 30


def test_truncated_log_is_named() -> None:
    """A log cut short of its checkpoint fails at the first missing index."""
    with pytest.raises(SequenceGapError) as info:
        verify_run(LOG.entries[:35], LOG.chains[:35], LOG.checkpoint())
    assert info.value.index == 35
    with pytest.raises(SequenceGapError) as info:
        verify_run(LOG.entries[:35], LOG.chains, LOG.checkpoint())
    assert info.value.index == 35
    with pytest.raises(ChainMismatchError) as chain_info:
        verify_run(LOG.entries, LOG.chains[:35], LOG.checkpoint())
    assert chain_info.value.index == 35


def test_rewritten_chain_is_caught_by_the_root() -> None:
    """If an edit comes with a recomputed chain, the first checkpoint that disagrees bounds it."""
    entries = list(LOG.entries)
    entries[22] = entries[22].replace(b"search", b"delete")
    chains = chain_fold(chain_seed(LOG.origin), merkle.leaf_hashes(entries))
    cps = [LOG.checkpoint(s) for s in (10, 20, 30, 40)]
    with pytest.raises(RootMismatchError) as info:
        verify_run(entries, chains, cps)
    assert info.value.index == 20


def test_run_verifier_streams_across_checkpoints() -> None:
    """Feeding in pieces that straddle checkpoint sizes gives the same result as one call."""
    verifier = RunVerifier(LOG.origin, [LOG.checkpoint(s) for s in (3, 16, 17, 40)])
    for lo, hi in ((0, 5), (5, 16), (16, 16), (16, 29), (29, 40)):
        verifier.feed(LOG.entries[lo:hi], LOG.chains[lo:hi], range(lo, hi))
    assert verifier.finish().checkpoints == 4


def test_run_verifier_resumes_mid_log() -> None:
    """Starting from a trusted compact range and chain value verifies only the rest of the log."""
    tree = merkle.CompactRange()
    tree.extend(LOG.leaves[:25])
    verifier = RunVerifier(LOG.origin, [LOG.checkpoint()], prev_chain=LOG.chains[24], tree=tree)
    verifier.feed(LOG.entries[25:], LOG.chains[25:])
    assert verifier.finish().entries == 40
    with pytest.raises(InvalidInputError):
        RunVerifier(LOG.origin, [LOG.checkpoint()], tree=tree)
    bad = RunVerifier(LOG.origin, [LOG.checkpoint()], prev_chain=LOG.chains[24], tree=tree)
    with pytest.raises(ChainMismatchError) as info:
        bad.feed(LOG.entries[26:], LOG.chains[26:])
    assert info.value.index == 25
    with pytest.raises(VerificationError):
        bad.feed(LOG.entries[25:], LOG.chains[25:])


def test_checkpoints_of_another_log_are_refused() -> None:
    """A run is only checked against checkpoints with its own origin."""
    with pytest.raises(VerificationError):
        verify_run(LOG.entries, LOG.chains, Checkpoint("other.example/log", 40, LOG.checkpoint().root))
