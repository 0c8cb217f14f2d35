"""A small in-memory log for tests: entries, chain values, stored tree and signed checkpoints."""

from __future__ import annotations

from sealtrail.core import merkle
from sealtrail.core.canonical import canonical_json
from sealtrail.core.chain import chain_fold, chain_seed
from sealtrail.core.checkpoint import Checkpoint
from sealtrail.core.cosignature import CosignatureSigner
from sealtrail.core.note import Ed25519Signer, sign_note
from sealtrail.core.tlogproof import format_proof

ORIGIN = "sealtrail.example/t/acme"
T0 = 1_700_000_000


class SmallLog:
    """A log of ``size`` canonical-JSON entries with one log key and one cosigner key."""

    def __init__(self, size: int, *, origin: str = ORIGIN) -> None:
        self.origin = origin
        self.entries = [canonical_json({"index": i, "tool_name": "search", "n": i * 7}) for i in range(size)]
        self.leaves = merkle.leaf_hashes(self.entries)
        self.chains = chain_fold(chain_seed(origin), self.leaves)
        self.store = merkle.MemoryNodeStore()
        self.store.add_runs(merkle.CompactRange().extend(self.leaves))
        self.log_key = Ed25519Signer.generate(origin)
        self.cosigner = CosignatureSigner.generate(origin + "/clock")

    def checkpoint(self, size: int | None = None) -> Checkpoint:
        """The checkpoint of the first ``size`` entries (all by default)."""
        size = len(self.entries) if size is None else size
        return Checkpoint(self.origin, size, merkle.root_at(self.store, size))

    def signed(
        self,
        size: int | None = None,
        *,
        timestamp: int = T0,
        log_key: Ed25519Signer | None = None,
        cosigner: CosignatureSigner | None = None,
    ) -> str:
        """The checkpoint signed by the log key and cosigned at ``timestamp``."""
        body = self.checkpoint(size).body()
        return sign_note(body, [log_key or self.log_key, (cosigner or self.cosigner).at(timestamp)])

    def proof_file(self, index: int, size: int | None = None, *, extra: bytes | None = None) -> str:
        """A tlog-proof file for entry ``index`` under the signed checkpoint at ``size``."""
        size = len(self.entries) if size is None else size
        proof = merkle.inclusion_proof(self.store, index, size)
        return format_proof(index, proof, self.signed(size), extra=extra)

    def vkeys(self) -> list[str]:
        """The log key's and the cosigner's vkey strings."""
        return [self.log_key.verifier().vkey(), self.cosigner.verifier().vkey()]
