"""Fault injection on the whole pipeline: nothing acknowledged is lost, duplicated or unverifiable."""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from tests.chaos.faults import FAULTS, schedule
from tests.support.pipeline import Pipeline
from tests.support.pipeline_load import Load, client_for, drain_client, generate, verdict, wait_logged

FAULTS_PER_KIND = int(os.environ.get("SEALTRAIL_CHAOS_FAULTS", "2"))
RATE = float(os.environ.get("SEALTRAIL_CHAOS_RATE", "300"))


async def _ingest_ready(pipe: Pipeline, within_s: float = 120) -> None:
    """Bounded wait until ingest answers /readyz 200 again (Kafka and PostgreSQL back)."""
    deadline = time.monotonic() + within_s
    async with httpx.AsyncClient(timeout=2) as client:
        while time.monotonic() < deadline:
            try:
                if (await client.get(f"{pipe.url}/readyz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.3)
    raise AssertionError(f"ingest not ready {within_s:.0f}s after a fault")


async def _trimmed_records(pipe: Pipeline) -> int:
    """Records deleted from the start of the sealed topic's partitions (their log start offsets)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=pipe.kafka.bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition("sealtrail.sealed", p) for p in range(pipe.partitions)]
        return sum((await consumer.beginning_offsets(tps)).values())
    finally:
        await consumer.stop()


async def test_faults_lose_duplicate_and_corrupt_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """While the SDK sends events, the broker and PostgreSQL are restarted (stop/start and kill -9),
    ingest, a ledger and the projector are SIGKILLed, and a ledger is SIGSTOPped past its session
    timeout (SEALTRAIL_CHAOS_FAULTS of each kind), and the ledgers delete the sealed topic's records
    below their committed offsets every second. Afterwards records were deleted, every event the SDK
    got a 202 for is in the log exactly once, the spool was delivered, every log verifies and
    `sealtrail admin check-read-models` finds every entry column and read model equal to a rebuild
    from the log."""
    monkeypatch.setenv("SEALTRAIL_LEDGER_TRIM_INTERVAL_S", "1")
    seed = int(os.environ.get("SEALTRAIL_CHAOS_SEED", str(int(time.time()))))
    rng = random.Random(seed)
    random.seed(seed)
    pipe = Pipeline(tmp_path / "stack")
    load = Load()
    stop, halt = asyncio.Event(), asyncio.Event()
    restarts: dict[str, int] = {}
    done: Counter[str] = Counter()
    try:
        await pipe.start()
        supervisor = asyncio.create_task(pipe.supervise(halt, restarts))
        client = client_for(pipe, load, tmp_path / "spool")
        client.start()
        sending = asyncio.create_task(generate(client, load, RATE, stop))
        try:
            await asyncio.sleep(2)
            for kind in schedule(FAULTS_PER_KIND, rng):
                await FAULTS[kind](pipe)
                done[kind] += 1
                await _ingest_ready(pipe)
                await asyncio.sleep(rng.uniform(0.3, 1.5))
        finally:
            stop.set()
            await sending
        await drain_client(client, load)
        await wait_logged(pipe.pg.url, len(set(load.accepted_ids)))
        await asyncio.sleep(2)  # a trimming pass after the last commit
        trimmed = await _trimmed_records(pipe)
        halt.set()
        await supervisor
        result = await verdict(pipe, load)
    finally:
        halt.set()
        stop.set()
        pipe.close()
    print(f"\nchaos seed={seed} faults={dict(done)} supervisor restarts={restarts} "
          f"spooled batches={load.spooled_batches} {result}")
    assert all(done[k] == FAULTS_PER_KIND for k in FAULTS), done
    assert load.accepted_ids, "the SDK got no 202 at all"
    assert trimmed > 0, "the ledgers deleted no record of the sealed topic"
    assert result.lost == 0, result
    assert result.duplicated == 0 and result.stored == result.distinct_stored, result
    assert result.unexpected == 0, result
    assert result.unsent_or_rejected == 0, result
    assert result.verified_entries == result.stored, result
    assert result.read_models_ok, result
