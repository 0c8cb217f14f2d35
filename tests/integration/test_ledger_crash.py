"""The ledger killed with SIGKILL at random moments, again and again, loses and repeats nothing."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import asyncpg

from sealtrail.core.record import SealedRecord
from sealtrail.devstack._proc import free_port
from tests.support.ledger import check_log, create_tenants, produce, sealed, wait_for_checkpoint

KILLS = int(os.environ.get("SEALTRAIL_CRASH_KILLS", "20"))


def _start_ledger(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    out = open(log_path, "ab")  # noqa: SIM115 - handed to the child
    return subprocess.Popen(
        [sys.executable, "-m", "sealtrail.cli.main", "ledger", "--port", str(free_port()),
         "--max-records", "300"],
        env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )


async def _producer(bootstrap: str, topic: str, sent: list[SealedRecord], stop: asyncio.Event) -> None:
    while not stop.is_set():
        batch = [sealed(random.choice(["acme", "beta"])) for _ in range(40)]
        await produce(bootstrap, topic, batch)
        sent += batch
        await asyncio.sleep(0.05)


async def test_sigkill_at_random_moments_loses_and_duplicates_nothing(
    fresh_db_url: str, kafka_bootstrap: str, topic_name: str, tmp_path: Path
) -> None:
    """While events flow, the ledger process is SIGKILLed at random moments (20 times by default)
    and restarted. Every produced event is then in its log exactly once, indices are contiguous,
    chains and roots verify, and successive checkpoints are consistent."""
    await create_tenants(fresh_db_url, "acme", "beta")
    env = {
        **os.environ, "SEALTRAIL_DATABASE_URL": fresh_db_url, "SEALTRAIL_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "SEALTRAIL_SEALED_TOPIC": topic_name, "SEALTRAIL_DLQ_TOPIC": f"{topic_name}.dlq",
        "SEALTRAIL_CHECKPOINTS_TOPIC": f"{topic_name}.cp", "SEALTRAIL_TOPIC_PARTITIONS": "3",
        "SEALTRAIL_LEDGER_GROUP": f"{topic_name}.ledger", "SEALTRAIL_LEDGER_INSTANCE_ID": "ledger-1",
        "SEALTRAIL_SIGNING_KEY_DIR": str(tmp_path / "keys"), "SEALTRAIL_CHECKPOINT_INTERVAL_S": "0.2",
    }
    log_path = tmp_path / "ledger.log"
    rng = random.Random(int(os.environ.get("SEALTRAIL_CRASH_SEED", time.time())))
    sent: list[SealedRecord] = []
    stop = asyncio.Event()
    proc = _start_ledger(env, log_path)
    await asyncio.sleep(3)  # first start creates the topics and keys
    producing = asyncio.create_task(_producer(kafka_bootstrap, topic_name, sent, stop))
    kills = 0
    try:
        while kills < KILLS:
            await asyncio.sleep(rng.uniform(0.3, 2.5))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
            proc = _start_ledger(env, log_path)
        stop.set()
        await producing
        expected = {t: sum(1 for r in sent if r.log == t) for t in ("acme", "beta")}
        await wait_for_checkpoint(fresh_db_url, expected, within_s=90)
    finally:
        stop.set()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert kills >= KILLS
    assert await check_log(fresh_db_url, "acme") == expected["acme"]
    assert await check_log(fresh_db_url, "beta") == expected["beta"]
    conn = await asyncpg.connect(fresh_db_url)
    try:
        stored = {str(r["event_id"]) for r in await conn.fetch("SELECT event_id FROM entries")}
        assert await conn.fetchval("SELECT count(*) FROM entries") == len(sent)
    finally:
        await conn.close()
    assert stored == {r.event_id for r in sent}
