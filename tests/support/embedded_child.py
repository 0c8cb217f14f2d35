"""A child process for the embedded crash test: ``python -m tests.support.embedded_child ROOT MODE``.

``produce``: run the embedded ledger while publishing batches of sealed records to the local
log; after each publish returns, append the batch's event ids to ``ROOT/acks.txt`` (one write
per line, so a SIGKILL never leaves half a line). Runs until killed.

``drain``: run the embedded ledger, publish nothing, and exit 0 once every record in the local
log is committed and every log has a checkpoint at its full size.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
from pathlib import Path

from tests.support.embedded import TOPIC, EmbeddedLedger, embedded_ledger
from tests.support.ledger import sealed


async def _produce(root: Path, ledger: EmbeddedLedger) -> None:
    fd = os.open(root / "acks.txt", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    while True:
        batch = [sealed(random.choice(["acme", "beta"])) for _ in range(random.randint(1, 30))]
        await ledger.log.publish(TOPIC, [(r.log.encode(), r.encode()) for r in batch])
        os.write(fd, ("ack " + ",".join(r.event_id for r in batch) + "\n").encode())
        await asyncio.sleep(random.uniform(0, 0.01))


async def _caught_up(ledger: EmbeddedLedger) -> bool:
    ends = {p: ledger.log.end_offset(TOPIC, p) for p in range(ledger.log.partitions(TOPIC))}
    positions = ledger.driver.positions
    if any(positions.get(p) != end for p, end in ends.items() if end):
        return False
    return not await ledger.checkpoints.grown_logs()


async def main(root: Path, mode: str) -> None:
    async with embedded_ledger(root, max_records=200) as ledger:
        if mode == "produce":
            await _produce(root, ledger)
        for _ in range(600):
            if await _caught_up(ledger):
                return
            await asyncio.sleep(0.1)
        raise SystemExit("the ledger did not catch up with the local log within 60 s")


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2]))
