"""Side by side with Tessera: its POSIX conformance server against Sealtrail, interleaved, as ratios.

Usage: ``python bench/bench_peer.py [--seconds S] [--rounds N] [--legs a,b,...] [--tessera-writers W]``

Builds, from the Go module proxy, Tessera's POSIX conformance server and its hammer
(``github.com/transparency-dev/tessera`` ``cmd/conformance/posix`` and ``internal/hammer`` at
:data:`TESSERA_VERSION`, the newest the proxy serves with every dependency it pins), and
``bench/peer`` (a Go load generator measuring Tessera as ``sealtrail bench`` measures Sealtrail:
one leaf per request, each leaf's time from its answer to the first checkpoint that covers it,
checkpoints polled every 50 ms). The binaries are cached under ``~/.cache/sealtrail/peer/``.

Then runs the legs round by round, in the same order each round (interleaved, so a busy moment of
the shared machine falls on every leg alike), and prints the medians and their ratios to the first
leg (Tessera by default): accepted/s, 202 (or 200) to signed checkpoint p50/p99, request p99, and
the server's CPU per entry (Tessera: the posix process; embedded: the ``sealtrail serve`` process;
stack: ingest, ledger, Kafka and PostgreSQL). The load generators' CPU is not counted; they share
the machine with the servers. Legs:

- ``tessera``: the posix server, ``bench/peer`` with W writers (3,000 by default), 1 KiB leaves.
  Tessera answers an add once the batch holding it is sequenced (256 entries or 1 s), so its rate
  grows with the writers in flight; 3,000 is what its published figures use.
- ``tessera-64``: the same with 64 writers, the connections of the one-event legs below.
- ``tessera-hammer``: the posix server and Tessera's own hammer (W writers, no readers) for S
  seconds; accepted/s is the growth of the signed tree size over the run (no latencies).
- ``embedded-1``: ``sealtrail bench`` (``sealtrail serve``), one 1 KiB event per request, 64 connections.
- ``embedded-500``: ``sealtrail bench``, batches of 500, 2 connections.
- ``stack-500``: ``bench/bench_e2e.py`` (ingest, Kafka, ledger, PostgreSQL), batches of 500, 8 connections.
- ``stack-1``: ``bench/bench_e2e.py``, one event per request, 64 connections.

Writes bench/results/peer.json (every run, the medians, the machine, the versions, the load
average before each run). It is a benchmark, not a test: ``make test`` does not run it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from bench.machine import describe
from sealtrail.cli.benchload import cpu_seconds
from sealtrail.core.note import generate_key
from sealtrail.devstack._proc import free_port

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "peer.json"
CACHE = Path(os.environ.get("SEALTRAIL_CACHE_DIR", Path.home() / ".cache" / "sealtrail")) / "peer"
TESSERA = "github.com/transparency-dev/tessera"
TESSERA_VERSION = "v1.0.4"
DEFAULT_LEGS = ("tessera", "tessera-64", "embedded-1", "embedded-500", "stack-500", "stack-1")
STACK_PROCESSES = ("ingest", "ledger", "kafka", "postgres")
ALL_LEGS = ("tessera", "tessera-64", "tessera-hammer", "embedded-1", "embedded-500", "stack-500", "stack-1")


@dataclass(frozen=True)
class Row:
    """One run of one leg, in the units of the table (None: not measured by that leg)."""

    leg: str
    accepted_per_s: float
    p50_s: float | None
    p99_s: float | None
    request_p99_s: float | None
    cpu_us_per_entry: float | None
    details: dict[str, Any] | None = field(default=None, compare=False)
    """The benchmark's own report of the run, kept in the results file."""


# --- pure parts: reading each benchmark's report, medians and ratios --------------------------


def row_from_peer_load(leg: str, report: dict[str, Any], server_cpu_s: float | None) -> Row:
    """A row from ``bench/peer``'s JSON line and the posix server's CPU seconds over the run."""
    lat, req = report["ack_to_checkpoint_s"], report["request_s"]
    accepted = int(report["accepted"])
    return Row(leg, float(report["accepted_per_s"]), lat.get("p50"), lat.get("p99"), req.get("p99"),
               None if server_cpu_s is None or not accepted else server_cpu_s / accepted * 1e6,
               report | {"server_cpu_s": server_cpu_s})


def row_from_sealtrail_bench(leg: str, report: dict[str, Any]) -> Row:
    """A row from ``sealtrail bench --json`` (the embedded default)."""
    lat = report["ack_to_checkpoint_s"]
    return Row(leg, float(report["accepted_per_s"]), lat["p50"], lat["p99"],
               report.get("request_s", {}).get("p99"), report.get("server_cpu_us_per_event"), report)


def row_from_e2e(leg: str, report: dict[str, Any]) -> Row:
    """A row from ``bench/bench_e2e.py``'s results file (the stack); CPU summed over the stack's
    processes (:data:`STACK_PROCESSES`; not the driver, not the rest of the machine)."""
    result = report["result"]
    lat = result["ack_to_checkpoint_s"]
    cpu = result.get("cpu_us_per_event") or {}
    servers = [cpu[p] for p in STACK_PROCESSES if p in cpu]
    return Row(leg, float(result["accepted_per_s"]), lat["p50"], lat["p99"],
               result.get("request_s", {}).get("p99"), sum(servers) if servers else None, result)


def _median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def medians(rows: list[Row]) -> list[Row]:
    """One row per leg (in first-seen order): the median of each figure over its runs."""
    legs = list(dict.fromkeys(r.leg for r in rows))
    out = []
    for leg in legs:
        mine = [r for r in rows if r.leg == leg]
        out.append(Row(leg, statistics.median(r.accepted_per_s for r in mine), _median([r.p50_s for r in mine]),
                       _median([r.p99_s for r in mine]), _median([r.request_p99_s for r in mine]),
                       _median([r.cpu_us_per_entry for r in mine])))
    return out


def _ratio(mine: float | None, base: float | None) -> str:
    return "-" if mine is None or not base else f"{mine / base:.2f}x"


def _fmt(value: float | None, spec: str, scale: float = 1.0) -> str:
    return "-" if value is None else format(value * scale, spec)


def ratio_table(rows: list[Row], base: str) -> str:
    """The medians as a text table, each figure with its ratio to leg ``base`` (higher accepted/s
    is better; lower latency and CPU are better)."""
    ref = next((r for r in rows if r.leg == base), None)
    head = (f"{'leg':<16}{'accepted/s':>12}{'ratio':>8}{'p50 s':>8}{'ratio':>8}{'p99 s':>8}{'ratio':>8}"
            f"{'req p99 ms':>12}{'ratio':>8}{'CPU us/entry':>14}{'ratio':>8}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r.leg:<16}{r.accepted_per_s:>12,.0f}{_ratio(r.accepted_per_s, ref.accepted_per_s if ref else None):>8}"
            f"{_fmt(r.p50_s, '.2f'):>8}{_ratio(r.p50_s, ref.p50_s if ref else None):>8}"
            f"{_fmt(r.p99_s, '.2f'):>8}{_ratio(r.p99_s, ref.p99_s if ref else None):>8}"
            f"{_fmt(r.request_p99_s, '.1f', 1000):>12}"
            f"{_ratio(r.request_p99_s, ref.request_p99_s if ref else None):>8}"
            f"{_fmt(r.cpu_us_per_entry, ',.0f'):>14}"
            f"{_ratio(r.cpu_us_per_entry, ref.cpu_us_per_entry if ref else None):>8}")
    return "\n".join(lines)


def checkpoint_size(text: str) -> int:
    """The tree size of a C2SP checkpoint (its second line)."""
    lines = text.split("\n")
    if len(lines) < 3 or not lines[1].isdigit():
        raise ValueError(f"not a checkpoint: {text[:80]!r}")
    return int(lines[1])


# --- building Tessera and the load generator --------------------------------------------------


def _go(args: list[str], cwd: Path, env: dict[str, str]) -> None:
    done = subprocess.run(["go", *args], cwd=cwd, env={**os.environ, **env}, capture_output=True, text=True,
                          check=False, timeout=1800)
    if done.returncode != 0:
        raise SystemExit(f"go {' '.join(args)} failed:\n{done.stderr[-3000:]}")


def build(cache: Path = CACHE) -> Path:
    """The directory of ``posix``, ``hammer`` and ``peer-load``, built once per Tessera version."""
    if shutil.which("go") is None:
        raise SystemExit("bench_peer needs the Go toolchain (go) on PATH")
    bindir = cache / TESSERA_VERSION / "bin"
    if not all((bindir / b).exists() for b in ("posix", "hammer")):
        bindir.mkdir(parents=True, exist_ok=True)
        _go(["install", f"{TESSERA}/cmd/conformance/posix@{TESSERA_VERSION}",
             f"{TESSERA}/internal/hammer@{TESSERA_VERSION}"], cwd=cache, env={"GOBIN": str(bindir)})
    _go(["build", "-o", str(bindir / "peer-load"), "."], cwd=ROOT / "bench" / "peer", env={})
    return bindir


# --- the legs ----------------------------------------------------------------------------------


@contextmanager
def tessera_server(bindir: Path, work: Path) -> Iterator[tuple[str, int, str]]:
    """The posix conformance server on a fresh directory: (root URL, pid, verifier key)."""
    skey, vkey = generate_key("bench.sealtrail.dev/tessera")
    keyfile = work / "tessera.key"
    keyfile.write_text(skey)
    keyfile.chmod(0o600)
    port = free_port()
    with open(work / "tessera.log", "ab") as out:
        proc = subprocess.Popen([str(bindir / "posix"), f"--storage_dir={work / 'tlog'}",
                                 f"--listen=127.0.0.1:{port}", f"--private_key={keyfile}"],
                                stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"the posix server exited with {proc.returncode}; see {work / 'tessera.log'}")
            try:
                if httpx.get(url + "checkpoint", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the posix server served no checkpoint within 60 s")
            time.sleep(0.1)
        yield url, proc.pid, vkey
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def leg_tessera(bindir: Path, args: argparse.Namespace, *, leg: str = "tessera", writers: int | None = None) -> Row:
    with tempfile.TemporaryDirectory(prefix="sealtrail-peer-") as tmp, \
            tessera_server(bindir, Path(tmp)) as (url, pid, _):
        before = cpu_seconds(pid)
        done = subprocess.run([str(bindir / "peer-load"), f"-url={url}", f"-writers={writers or args.tessera_writers}",
                               f"-seconds={args.seconds}", "-leaf_bytes=1024"],
                              capture_output=True, text=True, check=False, timeout=args.seconds + 400)
        after = cpu_seconds(pid)
        if done.returncode != 0:
            raise SystemExit(f"peer-load failed: {done.stderr[-2000:]}")
        cpu = None if before is None or after is None else after - before
        return row_from_peer_load(leg, json.loads(done.stdout), cpu)


def leg_tessera_hammer(bindir: Path, args: argparse.Namespace) -> Row:
    with tempfile.TemporaryDirectory(prefix="sealtrail-peer-") as tmp, \
            tessera_server(bindir, Path(tmp)) as (url, pid, vkey):
        start = checkpoint_size(httpx.get(url + "checkpoint", timeout=10).text)
        before = cpu_seconds(pid)
        with open(Path(tmp) / "hammer.log", "ab") as out:
            hammer = subprocess.Popen([
                str(bindir / "hammer"), f"--log_url={url}", f"--log_public_key={vkey}",
                f"--num_writers={args.tessera_writers}", "--max_write_ops=1000000", "--num_readers_random=0",
                "--num_readers_full=0", "--leaf_min_size=1024", "--show_ui=false"], stdout=out, stderr=out)
        time.sleep(args.seconds)
        hammer.send_signal(signal.SIGTERM)
        hammer.wait(timeout=30)
        time.sleep(2.5)  # the last batch is integrated and a checkpoint published (1 s intervals)
        after = cpu_seconds(pid)
        grown = checkpoint_size(httpx.get(url + "checkpoint", timeout=10).text) - start
    cpu = None if before is None or after is None or not grown else (after - before) / grown * 1e6
    return Row("tessera-hammer", grown / args.seconds, None, None, None, cpu,
               {"leaves_integrated": grown, "writers": args.tessera_writers})


def _sealtrail_bench(batch: int, connections: int, seconds: float) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "sealtrail.cli.main", "bench", "--json", "--seconds", str(seconds),
                           "--batch", str(batch), "--connections", str(connections)],
                          cwd=ROOT, capture_output=True, text=True, check=False, timeout=seconds + 600)
    if done.returncode != 0:
        raise SystemExit(f"sealtrail bench failed: {done.stderr[-2000:]}")
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def _e2e(batch: int, concurrency: int, seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="sealtrail-peer-") as tmp:
        results = Path(tmp) / "e2e.json"
        done = subprocess.run([sys.executable, "bench/bench_e2e.py", "--seconds", str(seconds), "--concurrency",
                               str(concurrency), "--batch", str(batch), "--results", str(results)],
                              cwd=ROOT, capture_output=True, text=True, check=False, timeout=seconds + 900)
        if done.returncode != 0:
            raise SystemExit(f"bench_e2e failed: {done.stderr[-2000:]}")
        report: dict[str, Any] = json.loads(results.read_text())
        return report


LEGS: dict[str, Callable[[Path, argparse.Namespace], Row]] = {
    "tessera": leg_tessera,
    "tessera-64": lambda b, a: leg_tessera(b, a, leg="tessera-64", writers=64),
    "tessera-hammer": leg_tessera_hammer,
    "embedded-1": lambda _, a: row_from_sealtrail_bench("embedded-1", _sealtrail_bench(1, 64, a.seconds)),
    "embedded-500": lambda _, a: row_from_sealtrail_bench("embedded-500", _sealtrail_bench(500, 2, a.seconds)),
    "stack-500": lambda _, a: row_from_e2e("stack-500", _e2e(500, 8, a.seconds)),
    "stack-1": lambda _, a: row_from_e2e("stack-1", _e2e(1, 64, a.seconds)),
}


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=15.0, help="sending time of each run")
    parser.add_argument("--rounds", type=int, default=2, help="runs of every leg, interleaved")
    parser.add_argument("--legs", default=",".join(DEFAULT_LEGS), help=f"comma-separated, of {', '.join(ALL_LEGS)}")
    parser.add_argument("--tessera-writers", type=int, default=3000,
                        help="concurrent writers against Tessera in legs tessera and tessera-hammer")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    legs = [x.strip() for x in args.legs.split(",") if x.strip()]
    unknown = [x for x in legs if x not in LEGS]
    if unknown or not legs:
        raise SystemExit(f"unknown legs {unknown}; choose from {', '.join(ALL_LEGS)}")
    bindir = build()
    runs: list[dict[str, Any]] = []
    for n in range(args.rounds):
        for leg in legs:
            load = load_average()
            row = LEGS[leg](bindir, args)
            runs.append({"round": n, "load_average_before": load, **asdict(row)})
            print(f"round {n} {leg}: {json.dumps(asdict(replace(row, details=None)))} (load average before {load})",
                  flush=True)
    rows = medians([Row(**{k: v for k, v in r.items() if k in Row.__dataclass_fields__ and k != "details"})
                    for r in runs])
    table = ratio_table(rows, legs[0])
    print(table)
    report = {"benchmark": "peer", "machine": describe("fastapi", "uvicorn", "orjson", "pynacl") | {
        "go": subprocess.run(["go", "version"], capture_output=True, text=True, check=False).stdout.strip(),
        "tessera": TESSERA_VERSION}, "setup": {k: str(v) for k, v in vars(args).items()},
        "runs": runs, "medians": [asdict(r) for r in rows], "table": table.split("\n")}
    args.results.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
