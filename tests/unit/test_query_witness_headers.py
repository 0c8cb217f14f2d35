"""The query API's witness headers on the latest checkpoint: valid cosignatures of the configured
witnesses, and the quorum; absent without witnesses."""

from __future__ import annotations

from sealtrail.core.cosignature import CosignatureSigner
from sealtrail.core.note import add_signatures
from sealtrail.core.quorum import WitnessPolicy
from services.query.proofs import _witness_headers
from tests.support.witnesslog import WitnessedLog

W1, W2 = CosignatureSigner.generate("witness.example/w1"), CosignatureSigner.generate("witness.example/w2")


def test_headers_count_valid_cosignatures_of_configured_witnesses() -> None:
    """0 before any witness answered, 1 with one, none at all without a policy; a bad line counts nothing."""
    note = WitnessedLog(4).signed(4)
    policy = WitnessPolicy.from_vkeys([W1.verifier().vkey(), W2.verifier().vkey()], 2)
    assert _witness_headers(None, note) is None
    assert _witness_headers(policy, note) == {"Sealtrail-Witness-Cosignatures": "0", "Sealtrail-Witness-Quorum": "2"}
    one = add_signatures(note, [W1.at(1_765_000_000)])
    assert _witness_headers(policy, one) == {"Sealtrail-Witness-Cosignatures": "1", "Sealtrail-Witness-Quorum": "2"}
    forged = one[:-10] + ("A" if one[-10] != "A" else "B") + one[-9:]
    assert _witness_headers(policy, forged)["Sealtrail-Witness-Cosignatures"] == "0"  # type: ignore[index]
