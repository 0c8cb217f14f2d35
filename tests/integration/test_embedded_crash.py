"""The embedded pair (local log + SQLite) killed with SIGKILL at random moments loses and repeats
nothing: every acknowledged record is logged exactly once and the log verifies."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from sealtrail.core.record import decode_record
from sealtrail.infra.locallog import LocalLog
from sealtrail.infra.logfiles import encode_frame
from sealtrail.infra.sqlite import open_database
from tests.support.embedded import TOPIC, add_tenants, check_log

KILLS = int(os.environ.get("SEALTRAIL_EMBEDDED_CRASH_KILLS", "10"))
ROOT = Path(__file__).resolve().parents[2]


def _child(root: Path, mode: str) -> subprocess.Popen[bytes]:
    out = open(root / "child.log", "ab")  # noqa: SIM115 - handed to the child
    return subprocess.Popen([sys.executable, "-m", "tests.support.embedded_child", str(root), mode],
                            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def _acked(root: Path) -> set[str]:
    text = (root / "acks.txt").read_text() if (root / "acks.txt").exists() else ""
    return {eid for line in text.splitlines(keepends=True) if line.startswith("ack ") and line.endswith("\n")
            for eid in line[4:].strip().split(",")}


def _tear(root: Path, rng: random.Random) -> None:
    """What an OS crash mid-append leaves: part of an unacknowledged frame after the last one."""
    segments = sorted((root / "log" / TOPIC / str(rng.randrange(3))).glob("*.log"))
    frame = encode_frame(b"acme", os.urandom(rng.randint(10, 400)))
    with open(segments[-1], "ab") as f:
        f.write(frame[:rng.randint(1, len(frame) - 1)])


async def _logged_in_local_log(root: Path) -> list[str]:
    log = LocalLog(root=root / "log")
    await log.start()
    try:
        ids = []
        for p in range(log.partitions(TOPIC)):
            offset = 0
            while batch := await log.read(TOPIC, p, offset, max_records=5000):
                ids += [decode_record(r.value).event_id for r in batch]
                offset = batch[-1].offset + 1
        return ids
    finally:
        await log.stop()


async def test_sigkill_at_random_moments_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    """A child publishes to the local log and commits through the ledger worker to SQLite; it is
    SIGKILLed at random moments (10 times by default) and restarted, after every second kill with
    a torn frame left at the end of a partition, as an OS crash mid-append would. Then every acknowledged
    record is logged exactly once, every record in the local log is logged, nothing else is, and
    each log verifies (contiguous indices, chains, roots, signed and consistent checkpoints)."""
    db = await open_database(tmp_path / "sealtrail.db")
    await add_tenants(db, "acme", "beta")
    await db.close()
    rng = random.Random(int(os.environ.get("SEALTRAIL_CRASH_SEED", time.time())))
    torn = 0
    for kill in range(KILLS):
        acks = _size(tmp_path / "acks.txt")
        proc = _child(tmp_path, "produce")
        for _ in range(200):  # until the child has reopened the log and published
            if _size(tmp_path / "acks.txt") > acks or proc.poll() is not None:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(rng.uniform(0.05, 1.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if kill % 2:
            _tear(tmp_path, rng)
            torn += 1
    drain = _child(tmp_path, "drain")
    assert await asyncio.to_thread(drain.wait, 60) == 0, (tmp_path / "child.log").read_text()[-3000:]
    assert (tmp_path / "child.log").read_text().count("cut a torn tail") == torn

    acked, in_log = _acked(tmp_path), await _logged_in_local_log(tmp_path)
    assert len(acked) > 100 and acked <= set(in_log)
    assert len(in_log) == len(set(in_log))  # each publish made new event ids
    db = await open_database(tmp_path / "sealtrail.db")
    try:
        stored = await db.read(lambda c: c.execute("SELECT event_id FROM entries").fetchall())
    finally:
        await db.close()
    assert sorted(e for (e,) in stored) == sorted(in_log)
    sizes = {t: check_log(tmp_path / "sealtrail.db", t) for t in ("acme", "beta")}
    assert sum(sizes.values()) == len(in_log)
