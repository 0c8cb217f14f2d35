"""A/B of ``sealtrail serve`` under one event per request: variants interleaved, round by round.

Usage: ``python bench/bench_serve_ab.py NAME=TREE [NAME=TREE ...] [--rounds N] [--seconds S]
[--connections C] [--batch B] [--rate R] [--out FILE]``

Each TREE is a source tree of Sealtrail (this checkout, or ``git archive <commit>`` unpacked
elsewhere) run with this interpreter: ``sealtrail bench`` (no ``--url``) is started with the tree
as its working directory, so both the load generator and the ``sealtrail serve`` child it starts
on a fresh data directory import the tree's code. Every round runs each variant once, in the
order given, so a machine whose load changes during the run affects the variants alike. Each run
records the load average before it and ``sealtrail bench``'s report: accepted events/s, request
latency p50/p99, 202-to-checkpoint latency and the server's CPU per accepted event. ``--rate``
sends R events/s on a fixed schedule instead of as fast as answered: every variant then does the
same work, and their CPU per event compares with less noise than at saturation.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import describe

PACKAGES = ("fastapi", "starlette", "uvicorn", "uvloop", "httptools", "orjson", "pynacl", "blake3")


def run_once(tree: Path, seconds: float, connections: int, batch: int, rate: float) -> dict[str, Any]:
    """One ``sealtrail bench`` run of the code in ``tree``; its JSON report."""
    cmd = [sys.executable, "-m", "sealtrail.cli.main", "bench", "--seconds", str(seconds),
           "--connections", str(connections), "--batch", str(batch), "--rate", str(rate), "--json"]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, timeout=seconds + 600, check=False)
    if out.returncode != 0:
        raise SystemExit(f"sealtrail bench in {tree} exited {out.returncode}: {out.stderr[-2000:]}")
    report: dict[str, Any] = json.loads(out.stdout)
    return report


def summary(report: dict[str, Any]) -> dict[str, Any]:
    return {"accepted_per_s": report["accepted_per_s"], "request_p50_ms": round(report["request_s"]["p50"] * 1000, 1),
            "request_p99_ms": round(report["request_s"]["p99"] * 1000, 1),
            "server_cpu_us_per_event": report.get("server_cpu_us_per_event")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="+", help="NAME=TREE")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--rate", type=float, default=0.0, help="events/s on a fixed schedule (0: as fast as answered)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "serve-ab.json")
    args = parser.parse_args()
    variants = [(name, Path(tree).resolve()) for name, _, tree in (v.partition("=") for v in args.variants)]
    runs = []
    for round_ in range(1, args.rounds + 1):
        for name, tree in variants:
            load = list(os.getloadavg())
            started = time.time()
            report = run_once(tree, args.seconds, args.connections, args.batch, args.rate)
            run = {"variant": name, "round": round_, "load_average_before": [round(x, 2) for x in load],
                   "load_average_after": [round(x, 2) for x in os.getloadavg()],
                   "started_unix": round(started), **summary(report), "report": report}
            runs.append(run)
            print(json.dumps({k: v for k, v in run.items() if k != "report"}), flush=True)
    result = {"benchmark": "serve-ab", "setup": {"seconds": args.seconds, "connections": args.connections,
                                                 "batch": args.batch, "rate": args.rate,
                                                 "rounds": args.rounds},
              "variants": {name: str(tree) for name, tree in variants}, "machine": describe(*PACKAGES),
              "runs": runs}
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
