"""Load through the SDK (with a spool) and the end-of-run checks of DESIGN §8 on a :class:`Pipeline`."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from sealtrail.sdk import tool_call
from sealtrail.sdk.backoff import Backoff
from sealtrail.sdk.client import Accepted, Rejected, SealtrailClient
from services.projector.postgres import PostgresProjectorStore
from tests.support.ledger import check_log
from tests.support.pipeline import ROOT, Pipeline, connect


@dataclass
class Load:
    """What a load generator sent and what the SDK was told: every event id with a 202, and when."""

    sent: list[str] = field(default_factory=list)
    accepted: list[tuple[float, list[str]]] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    spooled_batches: int = 0

    def on_accepted(self, got: list[Accepted]) -> None:
        self.accepted.append((time.monotonic(), [a.event_id for a in got]))

    def on_rejected(self, got: list[Rejected]) -> None:
        self.rejected.extend(got)

    @property
    def accepted_ids(self) -> list[str]:
        return [e for _, ids in self.accepted for e in ids]


def client_for(pipe: Pipeline, load: Load, spool: Path) -> SealtrailClient:
    return SealtrailClient(pipe.url, pipe.token, batch_max=200, flush_interval_s=0.2, spool_dir=spool,
                           attempts=2, timeout_s=10, backoff=Backoff(base_s=0.2, cap_s=2.0),
                           on_accepted=load.on_accepted, on_rejected=load.on_rejected)


async def generate(client: SealtrailClient, load: Load, rate: float, stop: asyncio.Event) -> None:
    """Queue ``rate`` events per second (in ticks of 50 ms) until ``stop``."""
    started = time.monotonic()
    n = 0
    while not stop.is_set():
        due = int((time.monotonic() - started) * rate)
        while n < due and not stop.is_set():
            event = tool_call(agent_id=f"agent-{n % 5}", session_id=f"s-{n % 37}", server_id="srv-db",
                              tool_name="db.query", decision="allow", status="ok", latency_ms=n % 900,
                              payload={"args": {"q": f"select {n}"}}, subjects=[f"user:u{n % 50}@example.com"])
            load.sent.append(str(event["event_id"]))
            await client.send(event)
            n += 1
        await asyncio.sleep(0.05)


async def drain_client(client: SealtrailClient, load: Load, *, within_s: float = 180) -> None:
    """Flush until the queue and the spool are empty, then close; fails if that takes too long."""
    deadline = time.monotonic() + within_s
    while client.pending or client.spooled:
        if time.monotonic() > deadline:
            raise AssertionError(f"SDK still holds {client.pending} queued events, spool non-empty="
                                 f"{client.spooled} after {within_s:.0f}s")
        await client.flush()
        if client.pending or client.spooled:
            await asyncio.sleep(1)
    load.spooled_batches = client.stats.spooled_batches
    await client.close()


async def wait_logged(db_url: str, expected: int, *, within_s: float = 180) -> None:
    """Until the log holds ``expected`` entries, a signed checkpoint covers them all and the projector
    has caught up with every log."""
    deadline = time.monotonic() + within_s
    state: tuple[int, int, int] = (0, 0, 0)
    while time.monotonic() < deadline:
        try:
            conn = await connect(db_url, within_s=10)
            try:
                entries = await conn.fetchval("SELECT count(*) FROM entries")
                signed = await conn.fetchval(
                    "SELECT coalesce(sum(s), 0) FROM (SELECT max(tree_size) s FROM checkpoints GROUP BY log_id) x")
                behind = await conn.fetchval(
                    "SELECT count(*) FROM logs l LEFT JOIN projector_progress p USING (log_id)"
                    " WHERE coalesce(p.next_idx, 0) < l.size")
            finally:
                await conn.close()
        except (OSError, asyncpg.PostgresError):
            await asyncio.sleep(1)
            continue
        state = (entries, signed, behind)
        if entries >= expected and signed >= entries and behind == 0:
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"(entries, signed, logs behind) = {state}, expected {expected} entries")


@dataclass
class Verdict:
    accepted: int
    distinct_accepted: int
    stored: int
    distinct_stored: int
    lost: int
    unexpected: int
    duplicated: int
    verified_entries: int
    unsent_or_rejected: int
    read_models_ok: bool

    def ok(self) -> bool:
        return (self.lost == 0 and self.unexpected == 0 and self.duplicated == 0
                and self.verified_entries == self.stored and self.unsent_or_rejected == 0 and self.read_models_ok)


async def verdict(pipe: Pipeline, load: Load) -> Verdict:
    """Compare what the SDK was told with the log, verify every log, and check the read models and
    entry columns against the log with `sealtrail admin check-read-models` (the projector runs on)."""
    acked = load.accepted_ids
    conn = await connect(pipe.pg.url)
    try:
        rows = await conn.fetch("SELECT event_id::text AS e FROM entries")
        logs = [r["log_id"] for r in await conn.fetch("SELECT log_id FROM logs ORDER BY log_id")]
    finally:
        await conn.close()
    stored = Counter(r["e"] for r in rows)
    verified = sum([await check_log(pipe.pg.url, log) for log in logs])
    check = [sys.executable, "-m", "sealtrail.cli.main", "admin", "check-read-models"]
    out = await asyncio.to_thread(subprocess.run, check, env=pipe.services["projector"].env, cwd=ROOT,
                                  capture_output=True, timeout=600, check=False)
    assert out.returncode in (0, 1), out.stdout.decode() + out.stderr.decode()
    if out.returncode:
        print(out.stdout.decode(), out.stderr.decode()[-4000:])
    return Verdict(
        accepted=len(acked), distinct_accepted=len(set(acked)), stored=sum(stored.values()),
        distinct_stored=len(stored), lost=len(set(acked) - set(stored)), unexpected=len(set(stored) - set(acked)),
        duplicated=sum(n - 1 for n in stored.values() if n > 1), verified_entries=verified,
        unsent_or_rejected=len(set(load.sent) - set(acked)) + len(load.rejected),
        read_models_ok=out.returncode == 0)


async def digest(db_url: str) -> dict[str, str]:
    pool = await asyncpg.create_pool(db_url, min_size=1, max_size=2)
    try:
        return await PostgresProjectorStore(pool=pool).digest()
    finally:
        await pool.close()
