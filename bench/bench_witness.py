"""Witnessing: what one add-checkpoint costs, and how long a checkpoint takes to reach a quorum.

Two ``sealtrail witness serve`` processes (SQLite, as a witness operator runs it by default) follow
one log of ``--leaves`` leaves, on this machine over 127.0.0.1.

1. Latency and cost: ``--checkpoints`` sequential add-checkpoint requests of growing size to one
   witness through :class:`~sealtrail.infra.witnessclient.WitnessClient` (proof, POST, cosignature
   verified): p50/p99 seconds, and CPU seconds per checkpoint of the witness and of the client.
2. Time to quorum: a :class:`~sealtrail.infra.witnessclient.WitnessLoop` over both witnesses with
   quorum 2; a checkpoint is offered every ``--interval`` seconds (as the ledger signs them) and the
   time from its offer to its second verified cosignature is recorded: p50/p99.

    .venv/bin/python -m bench.bench_witness --out bench/results/witness.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from bench.ingest_load import live_cpu_s
from bench.machine import describe
from sealtrail.core.note import NoteSignature
from sealtrail.core.witnessing import WitnessConfig
from sealtrail.infra.witnessclient import WitnessClient, WitnessLoop
from tests.support.witness import WitnessProcess, add_log, start_witness, witness_key
from tests.support.witnesslog import WitnessedLog


def _own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _summary(seconds: list[float]) -> dict[str, float]:
    return {"n": len(seconds), "p50_ms": round(1000 * _pct(seconds, 0.5), 2),
            "p99_ms": round(1000 * _pct(seconds, 0.99), 2), "mean_ms": round(1000 * statistics.fmean(seconds), 2)}


async def _latency(w: WitnessProcess, log: WitnessedLog, sizes: list[int]) -> dict[str, Any]:
    async def proof(old: int, new: int) -> Sequence[bytes]:
        return log.proof(old, new)

    notes = {size: log.signed(size) for size in sizes}
    seconds: list[float] = []
    async with httpx.AsyncClient() as http:
        client = WitnessClient(WitnessConfig("w1", w.verifier, w.url), http=http)
        await client.add_checkpoint(notes[sizes[0]], sizes[0], proof)  # connection and first record
        witness_cpu, own_cpu = live_cpu_s(w.proc.pid), _own_cpu_s()
        for size in sizes[1:]:
            started = time.perf_counter()
            await client.add_checkpoint(notes[size], size, proof)
            seconds.append(time.perf_counter() - started)
        witness_cpu, own_cpu = live_cpu_s(w.proc.pid) - witness_cpu, _own_cpu_s() - own_cpu
    n = len(seconds)
    return {**_summary(seconds), "witness_cpu_ms_per_checkpoint": round(1000 * witness_cpu / n, 3),
            "client_cpu_ms_per_checkpoint": round(1000 * own_cpu / n, 3)}


async def _time_to_quorum(ws: list[WitnessProcess], log: WitnessedLog, sizes: list[int],
                          interval: float) -> dict[str, Any]:
    async def proof(old: int, new: int) -> Sequence[bytes]:
        return log.proof(old, new)

    offered: dict[int, float] = {}
    cosigners: dict[int, int] = {}
    reached: list[float] = []

    async def sink(_: str, size: int, __: NoteSignature) -> None:
        cosigners[size] = cosigners.get(size, 0) + 1
        if cosigners[size] == 2:
            reached.append(time.perf_counter() - offered[size])

    async with httpx.AsyncClient() as http:
        clients = [WitnessClient(WitnessConfig(f"w{n}", w.verifier, w.url), http=http) for n, w in enumerate(ws)]
        loop = WitnessLoop(clients, proof, sink, quorum=2)
        task = asyncio.create_task(loop.run())
        for size in sizes:
            note = log.signed(size)
            offered[size] = time.perf_counter()
            loop.offer(note, size)
            await asyncio.sleep(interval)
        deadline = time.monotonic() + 30
        while loop.witnessed_size < sizes[-1] and time.monotonic() < deadline:  # noqa: ASYNC110 - a counter
            await asyncio.sleep(0.005)
        task.cancel()
    return {**_summary(reached), "offered": len(sizes), "interval_s": interval}


async def main(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-witness-"))
    log = WitnessedLog(args.leaves)
    ws = []
    for n in (1, 2):
        key_file, vkey = witness_key(tmp, f"witness.example/w{n}")
        db = str(tmp / f"w{n}.db")
        add_log(db, log)
        ws.append(start_witness(key_file, vkey, db))
    try:
        step = max(1, args.leaves // (2 * args.checkpoints + 2))
        first = [step * (i + 1) for i in range(args.checkpoints + 1)]
        second = [first[-1] + step * (i + 1) for i in range(args.checkpoints)]
        latency = await _latency(ws[0], log, first)
        quorum = await _time_to_quorum(ws, log, second, args.interval)
    finally:
        for w in ws:
            w.stop()
    return {"benchmark": "witness", "machine": describe("httpx", "uvicorn", "fastapi"),
            "setup": {"witnesses": 2, "store": "SQLite (WAL, synchronous=FULL)", "leaves": args.leaves,
                      "transport": "HTTP/1.1 keep-alive over 127.0.0.1"},
            "add_checkpoint": latency, "time_to_quorum": quorum}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--leaves", type=int, default=100_000)
    parser.add_argument("--checkpoints", type=int, default=300)
    parser.add_argument("--interval", type=float, default=0.05)
    parser.add_argument("--out", type=Path)
    result = asyncio.run(main(parser.parse_args()))
    text = json.dumps(result, indent=2)
    if parser.parse_args().out:
        parser.parse_args().out.write_text(text + "\n")
    print(text)
