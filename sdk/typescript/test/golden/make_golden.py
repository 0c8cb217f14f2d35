"""Golden data for the TypeScript SDK, made by Sealtrail's Python core (deterministic: fixed seeds).

Run from the repository root::

    .venv/bin/python sdk/typescript/test/golden/make_golden.py > sdk/typescript/test/golden/golden.json

``test/golden.test.ts`` runs it again and fails if the committed file differs, so the file always
holds what the current Python core writes; the same test checks every case with the TypeScript code.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
from typing import Any

from sealtrail.core import merkle
from sealtrail.core.canonical import canonical_json
from sealtrail.core.checkpoint import Checkpoint
from sealtrail.core.cosignature import CosignatureSigner
from sealtrail.core.note import Ed25519Signer, sign_note
from sealtrail.core.receipt import Receipt, sign_receipt, sign_receipts
from sealtrail.core.tlogproof import format_proof

ORIGIN = "sealtrail.example/t/acme"
T0 = 1_700_000_000


def seed(label: str) -> bytes:
    return hashlib.sha256(b"sealtrail golden " + label.encode()).digest()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def event_id(i: int) -> str:
    return f"01890000-0000-7000-8000-{i:012x}"


def digest(i: int) -> str:
    return "blake3:" + hashlib.sha256(b"payload %d" % i).hexdigest()


def receipts() -> dict[str, Any]:
    key = Ed25519Signer("ingest.example", seed("receipt"))
    other = Ed25519Signer("ingest.example", seed("other receipt"))
    batches = {}
    for n in (1, 2, 3, 5, 8, 13):
        events = [(event_id(100 * n + i), digest(100 * n + i)) for i in range(n)]
        batches[str(n)] = {"events": [list(e) for e in events],
                           "receipts": sign_receipts("default", 1_765_000_000_123 + n, events, key)}
    v1 = sign_receipt(Receipt(event_id(7), "default", digest(7), 1_700_000_000_000), key)
    return {"vkey": key.verifier().vkey(), "other_vkey": other.verifier().vkey(), "log": "default",
            "batches": batches, "v1": {"receipt": v1, "event_id": event_id(7), "digest": digest(7),
                                       "time_ms": 1_700_000_000_000},
            "foreign": sign_receipts("default", 1, [(event_id(1), digest(1))], other)[0]}


def log(size: int) -> dict[str, Any]:
    entries = [canonical_json({"index": i, "tool_name": "search", "n": i * 7}) for i in range(size)]
    leaves = merkle.leaf_hashes(entries)
    store = merkle.MemoryNodeStore()
    store.add_runs(merkle.CompactRange().extend(leaves))
    log_key = Ed25519Signer(ORIGIN, seed("log"))
    cosigner = CosignatureSigner(ORIGIN + "/clock", seed("cosigner"))

    def signed(n: int, ts: int) -> str:
        return sign_note(Checkpoint(ORIGIN, n, merkle.root_at(store, n)).body(), [log_key, cosigner.at(ts)])

    checkpoints = {str(n): signed(n, T0 + n) for n in (1, 7, 16, size)}
    proofs = [{"index": i, "size": size,
               "file": format_proof(i, merkle.inclusion_proof(store, i, size), checkpoints[str(size)])}
              for i in range(size)]
    consistency = [{"from": a, "to": b, "proof": [b64(h) for h in merkle.consistency_proof(store, a, b)]}
                   for a, b in ((1, 7), (7, 16), (16, size), (1, size), (7, size))]
    roots = {str(n): b64(merkle.root_at(store, n)) for n in range(1, size + 1)}
    extra = format_proof(3, merkle.inclusion_proof(store, 3, size), checkpoints[str(size)], extra=b"hint")
    return {"origin": ORIGIN, "log_vkey": log_key.verifier().vkey(), "cosigner_vkey": cosigner.verifier().vkey(),
            "entries": [b64(e) for e in entries], "roots": roots, "checkpoints": checkpoints, "proofs": proofs,
            "consistency": consistency, "extra_proof": extra}


def canonical() -> list[dict[str, Any]]:
    values: list[Any] = [
        {"b": 1, "a": [True, None, "x"], "é": "ü", "\u20ac": 1, "\U0001f600": 2, "a\u0000": "\u001f\u007f"},
        {"numbers": [0, -0.0, 1.5, 1e21, 1e-7, 123456789012345, -42, 3.141592653589793, 5e-324]},
        {"name": "lookup_customer", "description": "Find a customer by e-mail",
         "inputSchema": {"type": "object", "properties": {"email": {"type": "string"}}, "required": ["email"]}},
        "line\nbreak \"quoted\" \\ back\tslash",
    ]
    return [{"value": v, "jcs": canonical_json(v).decode("utf-8"),
             "def_hash": "sha256:" + hashlib.sha256(canonical_json(v)).hexdigest()} for v in values]


def main() -> None:
    golden = {"receipts": receipts(), "log": log(21), "canonical": canonical()}
    json.dump(golden, sys.stdout, indent=1, sort_keys=True, ensure_ascii=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
