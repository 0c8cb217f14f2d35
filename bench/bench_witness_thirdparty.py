"""Witnessing ``sealtrail serve`` with litewitness, omniwitness and ``sealtrail witness`` (quorum 2).

All on this machine: ``sealtrail serve --witness-config`` with the three witnesses (litewitness
and omniwitness built from the pinned modules of tests/interop, ``sealtrail witness`` on SQLite).
A batch of events goes in every ``--every`` seconds; the latest checkpoint is polled every 5 ms.
For each new size the report keeps the time from its first answer (signed, not yet witnessed) to
its first answer with 2 valid cosignatures (the quorum) and with all 3: p50/p99 (resolution: the
poll interval plus one request). Each witness's CPU time (user + system, from /proc) over the run,
less its idle rate measured before, is divided by the checkpoints it cosigned.

    .venv/bin/python -m bench.bench_witness_thirdparty --checkpoints 40 --out bench/results/witness-thirdparty.json
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
from sealtrail.core.quorum import WitnessPolicy
from tests.support.serve import TENANT, create_key, send_events, serve_event, start_serve, wait_for_checkpoint
from tests.support.thirdparty_witness import (
    LITEWITNESS_VERSION,
    OMNIWITNESS_VERSION,
    SshAgent,
    litewitness_binaries,
    omniwitness_binary,
    three_witnesses,
    witness_table,
)

Seen = dict[int, list[float | None]]
"""Per checkpoint size: when first served, first served at the quorum, first served with all three."""


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _watch(url: str, token: str, policy: WitnessPolicy, stop: asyncio.Event,
                 cosigned: dict[str, set[int]]) -> Seen:
    seen: Seen = {}
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as http:
        while not stop.is_set():
            r = await http.get(f"{url}/v1/logs/{TENANT}/checkpoint")
            now = time.perf_counter()
            size = parse_checkpoint(parse_note(r.text).text).size
            names = policy.cosigners(r.text).names
            for name in names:
                cosigned.setdefault(name, set()).add(size)
            times = seen.setdefault(size, [now, None, None])
            if times[1] is None and len(names) >= 2:
                times[1] = now
            if times[2] is None and len(names) >= 3:
                times[2] = now
            await asyncio.sleep(0.005)
    return seen


async def _drive(url: str, gateway: str, token: str, policy: WitnessPolicy, rounds: int, every: float,
                 cosigned: dict[str, set[int]]) -> Seen:
    stop = asyncio.Event()
    watcher = asyncio.create_task(_watch(url, token, policy, stop, cosigned))
    for n in range(rounds):
        await send_events(url, gateway, [serve_event(1000 + 10 * n + i) for i in range(10)])
        await asyncio.sleep(every)
    await asyncio.sleep(3)
    stop.set()
    return await watcher


def _origin_and_vkey(data: Path) -> tuple[str, str, str, str]:
    served = start_serve(data)
    try:
        auditor, gateway = create_key(served, "auditor"), served.tokens["gateway"]
        asyncio.run(send_events(served.url, gateway, [serve_event(0)]))
        wait_for_checkpoint(served.url, auditor, TENANT, 1)
        headers = {"Authorization": f"Bearer {auditor}"}
        note = httpx.get(f"{served.url}/v1/logs/{TENANT}/checkpoint", headers=headers).text
        vkey = next(k["vkey"] for k in httpx.get(served.url + "/v1/keys", headers=headers).json()["keys"]
                    if k["purpose"] == "checkpoint")
    finally:
        served.stop()
    return parse_checkpoint(parse_note(note).text).origin, vkey, auditor, gateway


def main(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-witness-3p-"))
    data = tmp / "data"
    origin, vkey, auditor, gateway = _origin_and_vkey(data)
    agent = SshAgent(tmp)
    witnesses = three_witnesses(litewitness_binaries(), omniwitness_binary(), agent, tmp, origin, vkey)
    load_before = os.getloadavg()
    try:
        (tmp / "witnesses.toml").write_text(
            "quorum = 2\n" + "".join(witness_table(n, w.vkey, w.url) for n, w in witnesses.items()))
        os.environ["SEALTRAIL_WITNESS_CONFIG"] = str(tmp / "witnesses.toml")
        policy = WitnessPolicy.from_vkeys([w.vkey for w in witnesses.values()], 2)
        served = start_serve(data)
        try:
            idle0 = {n: _cpu_s(w.proc.pid) for n, w in witnesses.items()}
            time.sleep(args.idle)
            cpu0 = {n: _cpu_s(w.proc.pid) for n, w in witnesses.items()}
            idle_rate = {n: (cpu0[n] - idle0[n]) / args.idle for n in witnesses}
            began = time.perf_counter()
            cosigned: dict[str, set[int]] = {}
            seen = asyncio.run(_drive(served.url, gateway, auditor, policy, args.checkpoints, args.every, cosigned))
            elapsed = time.perf_counter() - began
            cpu1 = {n: _cpu_s(w.proc.pid) for n, w in witnesses.items()}
        finally:
            served.stop()
    finally:
        for w in witnesses.values():
            w.stop()
        agent.stop()
    load_after = os.getloadavg()
    sizes = [s for s in seen if s > 1]
    names = {n: w.vkey.split("+", 1)[0] for n, w in witnesses.items()}
    cpu = {}
    for n in witnesses:
        count = len(cosigned.get(names[n], set()) - {1})
        used = cpu1[n] - cpu0[n] - idle_rate[n] * elapsed
        cpu[n] = {"checkpoints_cosigned": count, "cpu_s": round(cpu1[n] - cpu0[n], 3),
                  "idle_cpu_s_per_s": round(idle_rate[n], 4),
                  "cpu_ms_per_checkpoint": round(1000 * used / count, 2) if count else None}
    return {"benchmark": "witness-thirdparty", "machine": describe("httpx", "uvicorn", "fastapi"),
            "versions": {"litewitness": f"filippo.io/torchwood {LITEWITNESS_VERSION}",
                         "omniwitness": f"github.com/transparency-dev/witness {OMNIWITNESS_VERSION}"},
            "setup": {"witnesses": list(witnesses), "quorum": 2, "poll_interval_s": 0.005,
                      "checkpoint_interval_s": 1.0, "batch_every_s": args.every, "events_per_batch": 10},
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in load_after],
            "signed_to_quorum": _summary([seen[s][1] - seen[s][0] for s in sizes  # type: ignore[operator]
                                          if seen[s][1] is not None]),
            "signed_to_all_three": _summary([seen[s][2] - seen[s][0] for s in sizes  # type: ignore[operator]
                                             if seen[s][2] is not None]),
            "checkpoints_seen": len(sizes), "never_at_quorum": sum(1 for s in sizes if seen[s][1] is None),
            "witness_cpu": cpu}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoints", type=int, default=40)
    parser.add_argument("--every", type=float, default=1.1)
    parser.add_argument("--idle", type=float, default=5.0, help="seconds to measure the witnesses' idle CPU")
    parser.add_argument("--out", type=Path)
    options = parser.parse_args()
    result = main(options)
    text = json.dumps(result, indent=2)
    if options.out:
        options.out.write_text(text + "\n")
    print(text)
