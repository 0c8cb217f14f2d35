"""Fault injectors for a running :class:`~tests.support.pipeline.Pipeline`.

Each takes the pipeline and returns once the fault is over (the broken part restarted, or resumed).
Blocking server restarts run in a thread so the load generator keeps sending through them.
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
from collections.abc import Awaitable, Callable

from sealtrail.errors import ServiceStartError
from tests.support.pipeline import Pipeline

# Longer than the ledger consumer's session timeout (10 s), so the group rebalances without it.
PAUSE_S = 14.0


async def kafka_restart(pipe: Pipeline) -> None:
    await asyncio.to_thread(pipe.kafka.stop)
    await asyncio.sleep(1)
    await asyncio.to_thread(pipe.kafka.start, timeout=120)


async def postgres_restart(pipe: Pipeline) -> None:
    await asyncio.to_thread(pipe.pg.stop)
    await asyncio.sleep(1)
    await _pg_start(pipe)


async def postgres_kill9(pipe: Pipeline) -> None:
    pipe.pg.kill()
    await asyncio.sleep(1)
    await _pg_start(pipe)


async def _pg_start(pipe: Pipeline, within_s: float = 90) -> None:
    """Start again; after a kill -9 the orphaned backends may hold shared memory for a moment."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            await asyncio.to_thread(pipe.pg.start, timeout=60)
            return
        except ServiceStartError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(1)


def _kill(name: str) -> Callable[[Pipeline], Awaitable[None]]:
    async def kill(pipe: Pipeline) -> None:
        await asyncio.to_thread(pipe.services[name].kill)
        pipe.services[name].ensure()

    return kill


async def ledger_kill(pipe: Pipeline) -> None:
    await _kill(random.choice(["ledger-1", "ledger-2"]))(pipe)


async def ledger_pause(pipe: Pipeline) -> None:
    """SIGSTOP one ledger past its session timeout (the other one takes its partitions), then SIGCONT."""
    svc = pipe.services[random.choice(["ledger-1", "ledger-2"])]
    svc.paused = True
    try:
        svc.signal(signal.SIGSTOP)
        await asyncio.sleep(PAUSE_S)
    finally:
        svc.signal(signal.SIGCONT)
        svc.paused = False


FAULTS: dict[str, Callable[[Pipeline], Awaitable[None]]] = {
    "kafka_restart": kafka_restart,
    "postgres_restart": postgres_restart,
    "postgres_kill9": postgres_kill9,
    "ingest_kill": _kill("ingest"),
    "ledger_kill": ledger_kill,
    "projector_kill": _kill("projector"),
    "ledger_pause": ledger_pause,
}


def schedule(per_kind: int, rng: random.Random) -> list[str]:
    """``per_kind`` of every fault, in a random order."""
    plan = [kind for kind in FAULTS for _ in range(per_kind)]
    rng.shuffle(plan)
    return plan
