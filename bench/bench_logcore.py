"""Benchmark of the verifiable-log core: appending, proof generation, run verification, storage.

Usage: ``python bench/bench_logcore.py [--leaves N] [--entry-size BYTES] [--batch N] [--proofs N]``

Prints the machine and the figures, and writes them to ``bench/results/logcore.json``.
Targets: append >= 200,000 leaves/s, proof p99 <= 1 ms, verification >= 150,000 entries/s.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sealtrail.core import merkle
from sealtrail.core.chain import chain_fold, chain_seed
from sealtrail.core.checkpoint import Checkpoint
from sealtrail.core.verify import verify_run

ORIGIN = "bench.sealtrail.example/log"
RESULTS = Path(__file__).resolve().parent / "results" / "logcore.json"
TARGETS = {"append_per_s": 200_000, "proof_p99_us": 1000.0, "verify_per_s": 150_000}


def machine() -> dict[str, Any]:
    """Describe the box the figures come from."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "blake3": version("blake3"),
        "pynacl": version("pynacl"),
    }


def make_entries(count: int, size: int) -> list[bytes]:
    """Distinct pseudo-random entries of ``size`` bytes (windows over one random buffer)."""
    blob = random.Random(1).randbytes(size + 8 * count)
    return [blob[8 * i : 8 * i + size] for i in range(count)]


def bench_append(
    entries: list[bytes], batch: int
) -> tuple[float, merkle.MemoryNodeStore, list[bytes], merkle.CompactRange]:
    """Append like the ledger: leaf hashes, chain values, compact range, node store, per batch."""
    store, compact = merkle.MemoryNodeStore(), merkle.CompactRange()
    prev = chain_seed(ORIGIN)
    chains: list[bytes] = []
    start = time.perf_counter()
    for pos in range(0, len(entries), batch):
        leaves = merkle.leaf_hashes(entries[pos : pos + batch])
        values = chain_fold(prev, leaves)
        prev = values[-1]
        store.add_runs(compact.extend(leaves))
        chains.extend(values)
    elapsed = time.perf_counter() - start
    return len(entries) / elapsed, store, chains, compact


def percentiles(samples_ns: list[int]) -> dict[str, float]:
    """p50, p99 and max in microseconds."""
    us = sorted(s / 1000 for s in samples_ns)
    return {
        "p50_us": round(statistics.median(us), 2),
        "p99_us": round(us[min(len(us) - 1, int(len(us) * 0.99))], 2),
        "max_us": round(us[-1], 2),
    }


def time_each(func: Callable[[int, int], object], args: list[tuple[int, int]]) -> list[int]:
    """Time ``func(*a)`` for each argument pair separately, in nanoseconds."""
    samples = []
    clock = time.perf_counter_ns
    for a, b in args:
        t0 = clock()
        func(a, b)
        samples.append(clock() - t0)
    return samples


def bench_proofs(store: merkle.MemoryNodeStore, size: int, count: int) -> dict[str, Any]:
    """Inclusion proofs of random leaves and consistency proofs from random older sizes, at ``size``."""
    rng = random.Random(2)

    def inclusion(index: int, tree_size: int) -> list[bytes]:
        return merkle.inclusion_proof(store, index, tree_size)

    def consistency(size1: int, size2: int) -> list[bytes]:
        return merkle.consistency_proof(store, size1, size2)

    at_size = [(rng.randrange(size), size) for _ in range(count)]
    from_older = [(rng.randrange(1, size), size) for _ in range(count)]
    at_older = [(rng.randrange(s), s) for s in (rng.randrange(1, size + 1) for _ in range(count))]
    most_nodes = max(
        max(len(merkle.plan_inclusion(i, n).ids) for i, n in at_size + at_older),
        max(len(merkle.plan_consistency(m, n).ids) for m, n in from_older),
    )
    return {
        "tree_size": size,
        "proofs_each": count,
        "inclusion": percentiles(time_each(inclusion, at_size)),
        "consistency": percentiles(time_each(consistency, from_older)),
        "inclusion_at_random_older_size": percentiles(time_each(inclusion, at_older)),
        "most_nodes_read_by_one_proof": most_nodes,
    }


def bench_verify(entries: list[bytes], chains: list[bytes], checkpoint: Checkpoint) -> float:
    """Verify the whole run against its checkpoint; entries per second."""
    start = time.perf_counter()
    result = verify_run(entries, chains, checkpoint)
    elapsed = time.perf_counter() - start
    assert result.entries == len(entries) and result.checkpoints == 1
    return len(entries) / elapsed


PROOF_KINDS = ("inclusion", "consistency", "inclusion_at_random_older_size")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--leaves", type=int, default=1_000_000)
    parser.add_argument("--entry-size", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=1000, help="entries per ledger batch")
    parser.add_argument("--proofs", type=int, default=10_000, help="proofs of each kind to time")
    return parser.parse_args()


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run every measurement, printing each figure as it comes."""
    print(f"generating {args.leaves:,} entries of {args.entry_size} bytes ...")
    entries = make_entries(args.leaves, args.entry_size)
    gc.collect()

    append_rate, store, chains, compact = bench_append(entries, args.batch)
    print(
        f"append (leaf hash + chain + compact range + node store, batches of {args.batch}): "
        f"{append_rate:,.0f} leaves/s"
    )
    proofs = bench_proofs(store, compact.size, args.proofs)
    for kind in PROOF_KINDS:
        p = proofs[kind]
        print(
            f"{kind} proof at {compact.size:,} leaves: p50 {p['p50_us']} us, p99 {p['p99_us']} us, "
            f"max {p['max_us']} us"
        )
    print(
        f"most stored nodes read by one proof (in one batched read): {proofs['most_nodes_read_by_one_proof']}"
    )
    verify_rate = bench_verify(entries, chains, Checkpoint(ORIGIN, compact.size, compact.root()))
    print(f"verify run (leaf hash + chain check + root): {verify_rate:,.0f} entries/s")
    per_entry = store.stored_bytes / compact.size
    print(
        f"stored tree: {store.stored_bytes:,} bytes = {per_entry:.2f} bytes/entry "
        f"(every perfect subtree root, 32-byte hashes); compact range {len(compact.to_bytes())} bytes"
    )
    return {
        "append_per_s": round(append_rate),
        "proofs": proofs,
        "verify_per_s": round(verify_rate),
        "stored_bytes_per_entry": round(per_entry, 2),
        "compact_range_bytes": len(compact.to_bytes()),
    }


def targets_met(result: dict[str, Any]) -> dict[str, bool]:
    """Compare the figures with the targets."""
    worst_p99 = max(result["proofs"][k]["p99_us"] for k in PROOF_KINDS)
    return {
        "append_per_s": result["append_per_s"] >= TARGETS["append_per_s"],
        "proof_p99_us": worst_p99 <= TARGETS["proof_p99_us"],
        "verify_per_s": result["verify_per_s"] >= TARGETS["verify_per_s"],
    }


def main() -> None:
    args = parse_args()
    info = machine()
    print(
        f"machine: {info['nproc']} CPUs, {info['cpu']}; {info['implementation']} {info['python']}; "
        f"blake3 {info['blake3']}, pynacl {info['pynacl']}"
    )
    result: dict[str, Any] = {"machine": info, "parameters": vars(args), **run(args)}
    result["targets"] = TARGETS
    result["targets_met"] = targets_met(result)
    for name, ok in result["targets_met"].items():
        print(f"target {name} {TARGETS[name]:,}: {'met' if ok else 'MISSED'}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
