"""Time from a checkpoint being served signed to it being served witnessed, on ``sealtrail serve``.

``sealtrail serve --witness-config`` with two ``sealtrail witness serve`` processes (SQLite), quorum
2, all on this machine. A batch of events goes in every ``--every`` seconds; the latest checkpoint
is polled every 5 ms, and for each new size the report keeps the time between its first answer
(``Sealtrail-Witness-Cosignatures: 0``) and its first answer at the quorum: p50/p99 (resolution: the
poll interval plus one request).

    .venv/bin/python -m bench.bench_witness_serve --checkpoints 40 --out bench/results/witness-serve.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.bench_witness import _summary
from bench.machine import describe
from sealtrail.core.checkpoint import parse_checkpoint
from sealtrail.core.note import parse_note
from tests.support.serve import TENANT, cli, create_key, send_events, serve_event, start_serve, wait_for_checkpoint
from tests.support.witness import start_witness, witness_key

Seen = dict[int, tuple[float, float | None]]
"""Per checkpoint size: when it was first served, and when first served at the quorum."""


async def _watch(url: str, token: str, stop: asyncio.Event) -> Seen:
    seen: Seen = {}
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as http:
        while not stop.is_set():
            r = await http.get(f"{url}/v1/logs/{TENANT}/checkpoint")
            now = time.perf_counter()
            size = parse_checkpoint(parse_note(r.text).text).size
            first, done = seen.get(size, (now, None))
            if done is None and int(r.headers["Sealtrail-Witness-Cosignatures"]) >= 2:
                done = now
            seen[size] = (first, done)
            await asyncio.sleep(0.005)
    return seen


async def _drive(url: str, gateway: str, token: str, rounds: int, every: float) -> Seen:
    stop = asyncio.Event()
    watcher = asyncio.create_task(_watch(url, token, stop))
    for n in range(rounds):
        await send_events(url, gateway, [serve_event(1000 + 10 * n + i) for i in range(10)])
        await asyncio.sleep(every)
    await asyncio.sleep(3)
    stop.set()
    return await watcher


def main(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-witness-serve-"))
    data = tmp / "data"
    served = start_serve(data)
    auditor, gateway = create_key(served, "auditor"), served.tokens["gateway"]
    asyncio.run(send_events(served.url, gateway, [serve_event(0)]))
    wait_for_checkpoint(served.url, auditor, TENANT, 1)
    headers = {"Authorization": f"Bearer {auditor}"}
    origin = parse_checkpoint(parse_note(httpx.get(f"{served.url}/v1/logs/{TENANT}/checkpoint",
                                                   headers=headers).text).text).origin
    vkey = next(k["vkey"] for k in httpx.get(served.url + "/v1/keys", headers=headers).json()["keys"]
                if k["purpose"] == "checkpoint")
    served.stop()
    witnesses, tables = [], []
    for n in (1, 2):
        key_file, wvkey = witness_key(tmp, f"witness.example/w{n}")
        db = str(tmp / f"w{n}.db")
        cli("witness", "log", "add", "--origin", origin, "--vkey", vkey, "--db", db)
        witnesses.append(start_witness(key_file, wvkey, db))
        tables.append(f'[[witness]]\nname = "w{n}"\nvkey = "{wvkey}"\nurl = "{witnesses[-1].url}"\n')
    (tmp / "witnesses.toml").write_text("quorum = 2\n" + "".join(tables))
    os.environ["SEALTRAIL_WITNESS_CONFIG"] = str(tmp / "witnesses.toml")
    served = start_serve(data)
    try:
        seen = asyncio.run(_drive(served.url, gateway, auditor, args.checkpoints, args.every))
    finally:
        served.stop()
        for w in witnesses:
            w.stop()
    waits = [done - first for size, (first, done) in seen.items() if done is not None and size > 1]
    return {"benchmark": "witness-serve", "machine": describe("httpx", "uvicorn", "fastapi"),
            "setup": {"witnesses": 2, "quorum": 2, "store": "SQLite", "poll_interval_s": 0.005,
                      "checkpoint_interval_s": 1.0, "batch_every_s": args.every},
            "signed_to_witnessed": _summary(waits),
            "checkpoints_seen": len(seen) - 1, "never_witnessed": sum(1 for _, d in seen.values() if d is None)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoints", type=int, default=40)
    parser.add_argument("--every", type=float, default=1.1)
    parser.add_argument("--out", type=Path)
    options = parser.parse_args()
    result = main(options)
    text = json.dumps(result, indent=2)
    if options.out:
        options.out.write_text(text + "\n")
    print(text)
