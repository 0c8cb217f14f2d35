"""The query API's witness status of a checkpoint (headers on the latest checkpoint and tlog-proof
files, a field of each listed checkpoint): valid cosignatures of the configured witnesses, their
names, and the quorum; absent without witnesses."""

from __future__ import annotations

from sealtrail.core.cosignature import CosignatureSigner
from sealtrail.core.note import add_signatures
from sealtrail.core.quorum import WitnessPolicy
from services.query.proofs import _witness_headers, _witness_status
from tests.support.witnesslog import WitnessedLog

W1, W2 = CosignatureSigner.generate("witness.example/w1"), CosignatureSigner.generate("witness.example/w2")


def test_headers_count_valid_cosignatures_of_configured_witnesses() -> None:
    """0 before any witness answered, 1 with one, none at all without a policy; a bad line counts nothing."""
    note = WitnessedLog(4).signed(4)
    policy = WitnessPolicy.from_vkeys([W1.verifier().vkey(), W2.verifier().vkey()], 2)
    assert _witness_headers(None, note) is None
    assert _witness_headers(policy, note) == {"Sealtrail-Witness-Cosignatures": "0", "Sealtrail-Witness-Quorum": "2",
                                              "Sealtrail-Witness-Cosigners": ""}
    one = add_signatures(note, [W1.at(1_765_000_000)])
    assert _witness_headers(policy, one) == {"Sealtrail-Witness-Cosignatures": "1", "Sealtrail-Witness-Quorum": "2",
                                             "Sealtrail-Witness-Cosigners": "witness.example/w1"}
    forged = one[:-10] + ("A" if one[-10] != "A" else "B") + one[-9:]
    assert _witness_headers(policy, forged)["Sealtrail-Witness-Cosignatures"] == "0"  # type: ignore[index]


def test_status_names_cosigners_and_says_whether_the_quorum_is_reached() -> None:
    """The checkpoint list's ``witnesses`` field: null without witnesses; names and the quorum."""
    note = WitnessedLog(4).signed(4)
    policy = WitnessPolicy.from_vkeys([W1.verifier().vkey(), W2.verifier().vkey()], 2)
    other = CosignatureSigner.generate("witness.example/other")
    assert _witness_status(None, note) is None
    assert _witness_status(policy, note) == {"cosigners": [], "quorum": 2, "witnessed": False}
    one = add_signatures(note, [W2.at(1_765_000_000), other.at(1_765_000_000)])  # an unknown witness counts not
    assert _witness_status(policy, one) == {"cosigners": ["witness.example/w2"], "quorum": 2, "witnessed": False}
    both = add_signatures(one, [W1.at(1_765_000_001)])
    status = _witness_status(policy, both)
    assert status is not None and sorted(status["cosigners"]) == ["witness.example/w1", "witness.example/w2"]
    assert status["witnessed"] is True
