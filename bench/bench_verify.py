"""Verification benchmark: ``sealtrail verify bundle`` over a bundle of N entries, and ``sealtrail
verify --url`` against a real ``sealtrail serve`` holding N events.

Usage: ``python bench/bench_verify.py [--entries N] [--runs R] [--baseline DIR] [--profile FILE]
[--serve N]``

Builds an export bundle (directory form) of N entries shaped like the ledger's: tool-call headers of
about 700 bytes with a sealed payload's ``key_ids``, ``payload_digest`` and ``payload_size``, one
``erasure`` event whose subject's payloads are missing (one entry in a thousand), RFC 6962 tree and
BLAKE3 chain as the ledger computes them, and a checkpoint signed and cosigned every
``--checkpoint-every`` entries. Then runs ``sealtrail verify bundle`` as a separate process R times
with the native verifier module and R times without it (``SEALTRAIL_NATIVE=0``, the pure Python
reference), interleaved run by run so both see the same machine load, and reports entries per
second (wall) and CPU microseconds per entry (the child's user + system, both threads).

``--serve N`` instead starts ``sealtrail serve`` on a fresh data directory (or ``--data-dir``, one
loaded before), sends it N events of about 1 KiB (batches of 500 on two connections), waits for a
checkpoint covering them all and runs
``sealtrail verify --url`` R times each way, interleaved; also the rate at which the server serves
binary entry pages alone (every page fetched and dropped), the bound of the client's rate.

``--baseline DIR`` (a checkout of another version, e.g. ``git worktree add /tmp/base HEAD~3``) also
runs that version's verifier on the same bundle, interleaved. ``--profile FILE`` also profiles one
in-process ``audit_bundle`` with cProfile and prints the top functions by own time. Writes
bench/results/verify.json (or verify-url.json for ``--serve``) with machine, versions and the load
average beside each run.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from blake3 import blake3

from bench.machine import describe
from sealtrail.audit import audit_bundle
from sealtrail.audit.bundle import BundleMeta, BundleWriter
from sealtrail.core import merkle
from sealtrail.core.audit import AuditEntry
from sealtrail.core.canonical import canonical_json
from sealtrail.core.chain import chain_fold, chain_seed
from sealtrail.core.checkpoint import Checkpoint
from sealtrail.core.cosignature import CosignatureSigner
from sealtrail.core.note import Ed25519Signer, sign_note

RESULTS = Path(__file__).resolve().parent / "results" / "verify.json"
ORIGIN = "sealtrail.local/log/bench"
PACKAGES = ("orjson", "pynacl", "blake3", "rfc8785", "pybase64", "sealtrail-native", "maturin")
PERIOD, ERASED = "p" * 26 + "period", "s" * 26 + "erased"
CHUNK = 50_000
SERVE_RATE = 5000.0


def _header(i: int) -> dict[str, object]:
    keys = [PERIOD, ERASED] if i % 1000 == 7 else [PERIOD, f"{i % 5000:032x}"] if i % 10 == 3 else [PERIOD]
    return {"type": "tool_call", "event_id": f"0190b5c1-{i >> 16:04x}-7{i & 0xfff:03x}-8000-{i:012x}",
            "occurred_at": f"2026-12-0{1 + i % 7}T10:{i % 60:02d}:{i % 59:02d}.{i % 1000:03d}000Z",
            "received_at": f"2026-12-0{1 + i % 7}T10:{i % 60:02d}:{i % 59:02d}.{i % 997:03d}000Z",
            "tenant": "bench", "gateway_id": "gw-1", "agent_id": f"agent-{i % 50}", "session_id": f"s-{i // 50}",
            "server_id": f"srv-{i % 20}", "tool_name": f"crm.search-{i % 200}", "tool_tier": "read",
            "decision": "deny" if i % 13 == 0 else "allow", "status": "error" if i % 17 == 0 else "ok",
            "latency_ms": i % 900, "key_ids": keys, "payload_size": 1051,
            "payload_digest": "blake3:" + blake3(i.to_bytes(8, "big")).hexdigest()}


def build(out: Path, entries: int, every: int) -> None:
    """Write a bundle of ``entries`` entries (the last an erasure event) with checkpoints every ``every``."""
    key = Ed25519Signer.generate("sealtrail.local/ledger")
    clock = CosignatureSigner.generate("sealtrail.local/ledger-clock")
    tree, prev, notes = merkle.CompactRange(), chain_seed(ORIGIN), []
    writer = BundleWriter(out)
    for pos in range(0, entries, CHUNK):
        headers = [_header(i) for i in range(pos, min(pos + CHUNK, entries))]
        if pos + len(headers) == entries:
            headers[-1] = {"type": "erasure", "erased_key_ids": [ERASED], "request_ref": "DSR-1",
                           "legal_basis": "gdpr.art17", "key_ids": [PERIOD], "payload_size": 120,
                           "payload_digest": "blake3:" + "0" * 64}
        raw = [canonical_json(h) for h in headers]
        leaves = merkle.leaf_hashes(raw)
        chains = chain_fold(prev, leaves)
        prev = chains[-1]
        rows = []
        for n, (entry, chain, header) in enumerate(zip(raw, chains, headers, strict=True)):
            i = pos + n
            missing = ERASED in header["key_ids"]  # type: ignore[operator]
            rows.append(AuditEntry(i, entry, chain, None if missing else str(header["payload_digest"])))
            tree.extend([leaves[n]])
            if tree.size % every == 0 or tree.size == entries:
                notes.append(sign_note(Checkpoint(ORIGIN, tree.size, tree.root()).body(),
                                       [key, clock.at(1_765_000_000 + tree.size)]))
        writer.write_entries(rows)
    keys = [{"purpose": "checkpoint", "vkey": key.verifier().vkey(), "not_before": None, "not_after": None},
            {"purpose": "cosign", "vkey": clock.verifier().vkey(), "not_before": None, "not_after": None}]
    writer.write_header(BundleMeta("bench", ORIGIN, entries, datetime.now(UTC).isoformat()), keys, notes)
    writer.close()


def run_cli(python: str, root: Path, args: list[str], native: bool) -> dict[str, Any]:
    """One ``sealtrail verify ARGS`` in a child process run from ``root``: wall and CPU seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load = [round(x, 2) for x in os.getloadavg()]
    started = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": str(root), "SEALTRAIL_NATIVE": "1" if native else "0"}
    done = subprocess.run([python, "-m", "sealtrail.cli.main", "verify", *args], cwd=root,
                          env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"verify {args[0]} from {root} failed: {done.stderr.strip() or done.stdout.strip()}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": round(wall, 3), "cpu_s": round(cpu, 3), "load_average_1_5_15": load,
            "output": done.stdout.strip()}


def toolchain() -> dict[str, str]:
    """The Rust compiler the native module was built with (as installed now) and the CPU's SHA extensions."""
    rustc = subprocess.run(["rustc", "-V"], capture_output=True, text=True, check=False).stdout.strip()
    flags = Path("/proc/cpuinfo").read_text().split()
    return {"rustc": rustc, "sha_ni": str("sha_ni" in flags), "avx2": str("avx2" in flags)}


def interleave(variants: dict[str, tuple[Path, bool]], verify_args: list[str], runs: int, entries: int
               ) -> dict[str, list[dict[str, Any]]]:
    """``runs`` rounds of every variant (its source root and whether the native module is on)."""
    out: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
    for n in range(runs):
        for name, (root, native) in variants.items():
            result = run_cli(sys.executable, root, verify_args, native)
            out[name].append(result)
            print(f"  run {n + 1} {name}: {result['wall_s']} s wall, {result['cpu_s']} s CPU, "
                  f"{entries / result['wall_s']:,.0f} entries/s, load {result['load_average_1_5_15']}", flush=True)
    return out


def profile(bundle: Path, out: Path) -> str:
    prof = cProfile.Profile()
    prof.enable()
    audit_bundle(bundle)
    prof.disable()
    prof.dump_stats(out)
    text = io.StringIO()
    pstats.Stats(prof, stream=text).sort_stats("tottime").print_stats(15)
    return text.getvalue()


def summarise(runs: list[dict[str, Any]], entries: int) -> dict[str, Any]:
    best_wall = min(r["wall_s"] for r in runs)
    best_cpu = min(r["cpu_s"] for r in runs)
    return {"runs": runs, "best_wall_s": best_wall, "entries_per_s_wall": round(entries / best_wall),
            "cpu_us_per_entry": round(best_cpu / entries * 1e6, 2), "entries_per_s_cpu": round(entries / best_cpu)}


def measure_url(events: int, runs: int, out: Path, packages: tuple[str, ...], data: Path | None = None) -> None:
    """``verify --url`` against ``sealtrail serve`` holding ``events`` events, native and pure
    interleaved; with ``data``, a data directory loaded by an earlier run is served instead."""
    from sealtrail.cli.bench import receipt_verifiers
    from sealtrail.cli.benchload import AnswerCheck, Load, send
    from tests.support.serve import TENANT, create_key, start_serve, wait_for_checkpoint

    work = Path(tempfile.mkdtemp(prefix="sealtrail-bench-verify-url-"))
    served = start_serve(data or work / "data", logs=work, timeout=120)
    try:
        started = time.perf_counter()
        total = events
        if data is None:
            load = Load(served.url, served.tokens["gateway"], events / SERVE_RATE, 2, 500, 1024, SERVE_RATE)

            async def go() -> Any:
                return await send(load, AnswerCheck(await receipt_verifiers(served.url), 50))

            sent = asyncio.run(go())
            total = sum(len(ids) for _, ids in sent.accepted)
        auditor = create_key(served, "auditor")
        size = wait_for_checkpoint(served.url, auditor, TENANT, total, timeout=events / 500 + 600)
        print(f"loaded {total:,} events (checkpoint at {size:,}) in {time.perf_counter() - started:.0f} s", flush=True)
        here = Path(__file__).resolve().parents[1]
        pages = [serve_pages(served.url, auditor, size) for _ in range(runs)]
        print(f"  server alone: {[p['entries_per_s'] for p in pages]} entries/s of binary pages", flush=True)
        verify_args = ["--url", served.url, "--log", TENANT, "--token", auditor]
        result = interleave({"native": (here, True), "pure": (here, False)}, verify_args, runs, size)
    finally:
        served.stop()
        shutil.rmtree(work, ignore_errors=True)
    figures = {name: summarise(r, size) for name, r in result.items()}
    for name, fig in figures.items():
        print(f"{name}: best {fig['entries_per_s_wall']:,} entries/s wall, {fig['cpu_us_per_entry']} us CPU/entry "
              "(client process only)")
    doc = {"benchmark": "verify_url", "at": datetime.now(UTC).isoformat(timespec="seconds"),
           "machine": {**describe(*packages, "httpx"), **toolchain()},
           "setup": {"events": total, "checkpoint_size": size, "runs": runs, "server": "sealtrail serve (SQLite)",
                     "page": 1000, "prefetch": 4},
           "server_pages_alone": pages, "result": figures}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {out}")


def serve_pages(url: str, token: str, size: int) -> dict[str, Any]:
    """Fetch every binary entries page of the log (as the verifier does: 1000 entries, 4 in flight)
    and drop it: the rate the server alone sustains."""
    from sealtrail.audit.client import LogClient, http_client
    from tests.support.serve import TENANT

    async def go() -> None:
        async with http_client(url, token) as http:
            async for _ in LogClient(http, TENANT).iter_pages(size):
                pass

    load = [round(x, 2) for x in os.getloadavg()]
    started = time.perf_counter()
    asyncio.run(go())
    wall = time.perf_counter() - started
    return {"wall_s": round(wall, 3), "entries_per_s": round(size / wall), "load_average_1_5_15": load}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--checkpoint-every", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--baseline", type=Path, help="a checkout of another version to compare with")
    parser.add_argument("--profile", type=Path, help="write a cProfile of one in-process verification here")
    parser.add_argument("--bundle", type=Path, help="verify this bundle (written by an earlier --keep) instead")
    parser.add_argument("--keep", type=Path, help="also keep the built bundle here")
    parser.add_argument("--serve", type=int, help="measure verify --url against sealtrail serve with this many events")
    parser.add_argument("--data-dir", type=Path, help="with --serve: serve this data directory, already loaded")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.serve:
        measure_url(args.serve, args.runs, args.out or RESULTS.with_name("verify-url.json"), PACKAGES, args.data_dir)
        return
    args.out = args.out or RESULTS
    work = Path(tempfile.mkdtemp(prefix="sealtrail-bench-verify-"))
    here = Path(__file__).resolve().parents[1]
    try:
        bundle = args.bundle or args.keep or work / "bundle"
        started = time.perf_counter()
        if args.bundle is None:
            build(bundle, args.entries, args.checkpoint_every)
        args.entries = sum(1 for _ in (bundle / "entries.jsonl").open("rb"))
        print(f"{'built' if args.bundle is None else 'counted'} {args.entries:,} entries in "
              f"{time.perf_counter() - started:.1f} s "
              f"({sum(p.stat().st_size for p in bundle.iterdir()) / 2**20:.0f} MiB)")
        variants = {"native": (here, True), "pure": (here, False),
                    **({"baseline": (args.baseline.resolve(), False)} if args.baseline else {})}
        runs = interleave(variants, ["bundle", str(bundle)], args.runs, args.entries)
        figures = {name: summarise(r, args.entries) for name, r in runs.items()}
        top = profile(bundle, args.profile) if args.profile else None
        if top:
            print(top)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for name, fig in figures.items():
        print(f"{name}: best {fig['entries_per_s_wall']:,} entries/s wall, {fig['cpu_us_per_entry']} us CPU/entry")
    doc = {"benchmark": "verify_bundle", "at": datetime.now(UTC).isoformat(timespec="seconds"),
           "machine": {**describe(*PACKAGES), **toolchain()},
           "setup": {"entries": args.entries, "checkpoint_every": args.checkpoint_every, "runs": args.runs,
                     "bundle": "directory", "baseline": str(args.baseline) if args.baseline else None},
           "result": figures, "profile_top": top}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
