"""``sealtrail witness serve`` as a child process on a free port, and a client that races it."""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

import httpx

from sealtrail.core.cosignature import CosignatureVerifier
from sealtrail.core.witness import SIZE_MEDIA_TYPE
from tests.support.serve import cli, free_port
from tests.support.witnesslog import WitnessedLog, cosigned_size_root


@dataclass
class WitnessProcess:
    """One running witness: its key, store and output files."""

    key_file: Path
    db: str
    port: int
    vkey: str
    proc: subprocess.Popen[bytes]
    err: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def verifier(self) -> CosignatureVerifier:
        return CosignatureVerifier.from_vkey(self.vkey)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)


def witness_key(tmp: Path, name: str = "witness.example/w1") -> tuple[Path, str]:
    """A new key file from ``sealtrail witness key generate``; (path, vkey)."""
    key_file = tmp / f"{name.replace('/', '_')}.key"
    done = cli("witness", "key", "generate", "--name", name, "--key-file", str(key_file))
    assert done.returncode == 0, done.stderr
    return key_file, done.stdout.strip()


def add_log(db: str, log: WitnessedLog) -> None:
    done = cli("witness", "log", "add", "--origin", log.origin, "--vkey", log.vkey, "--db", db)
    assert done.returncode == 0, done.stderr


def start_witness(key_file: Path, vkey: str, db: str, *, port: int | None = None, extra: Sequence[str] = (),
                  timeout: float = 30) -> WitnessProcess:
    """Start ``sealtrail witness serve`` and wait until it answers /healthz."""
    port = port or free_port()
    err = key_file.parent / f"witness-{port}-{time.monotonic_ns()}.err"
    with open(err, "wb") as e:
        proc = subprocess.Popen([sys.executable, "-m", "sealtrail.cli.main", "witness", "serve", "--key-file",
                                 str(key_file), "--db", db, "--port", str(port), *extra],
                                stdout=subprocess.DEVNULL, stderr=e)
    w = WitnessProcess(key_file, db, port, vkey, proc, err)
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"sealtrail witness exited with {proc.returncode}: {err.read_text()[-2000:]}")
        try:
            if httpx.get(w.url + "/healthz", timeout=1).status_code == 200:
                return w
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            w.stop(signal.SIGKILL)
            raise RuntimeError(f"sealtrail witness did not answer within {timeout} s: {err.read_text()[-2000:]}")
        time.sleep(0.05)


@dataclass
class Racer:
    """Submits checkpoints of several histories of one log and keeps every cosignature it got."""

    url: str
    witness: CosignatureVerifier
    histories: list[WitnessedLog]
    cosigned: list[tuple[int, bytes]] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)

    async def submit(self, client: httpx.AsyncClient, history: WitnessedLog, size: int) -> None:
        """Learn the witness's size with a 409, then ask it to cosign ``size`` of ``history``."""
        old = 0
        for _ in range(3):
            body = history.body(old, size) if old <= size else history.body(size, size)
            r = await client.post(self.url + "/add-checkpoint", content=body)
            self.statuses[r.status_code] = self.statuses.get(r.status_code, 0) + 1
            if r.status_code == 200:
                self.cosigned.append(cosigned_size_root(history.signed(size), r.text, self.witness))
                return
            if r.status_code != 409:
                return
            assert r.headers["content-type"] == SIZE_MEDIA_TYPE
            old = int(r.text)
            if old > size:
                return

    async def burst(self, rounds: int, *, forks: int = 4, each: int = 4) -> None:
        """Per round, ``forks`` new histories branch off at the witness's size and ``forks * each``
        requests naming that size go out at once: only one history may be cosigned past it."""
        base = self.histories[0]
        async with httpx.AsyncClient(timeout=30) as client:
            for round_ in range(rounds):
                r = await client.post(self.url + "/add-checkpoint", content=base.body(0, 1))
                old = int(r.text) if r.status_code == 409 else 1
                branches = [base.fork(old, old + 8, tag=f"r{round_}f{i}") for i in range(forks)]
                self.histories.extend(branches)
                won = await asyncio.gather(*(self._one(client, h, old, old + 1 + (i % 8))
                                             for h in branches for i in range(each)))
                base = next((h for h in won if h is not None), base)

    async def _one(self, client: httpx.AsyncClient, h: WitnessedLog, old: int, size: int) -> WitnessedLog | None:
        r = await client.post(self.url + "/add-checkpoint", content=h.body(old, size))
        self.statuses[r.status_code] = self.statuses.get(r.status_code, 0) + 1
        if r.status_code != 200:
            return None
        self.cosigned.append(cosigned_size_root(h.signed(size), r.text, self.witness))
        return h

    async def run(self, requests: int, *, seed: int) -> None:
        rng = random.Random(seed)
        top = max(len(h.leaves) for h in self.histories)
        # Sizes climb with the request number, with jitter: racing requests aim at nearby sizes.
        sizes = [max(1, min(top, i * top // requests + rng.randint(-8, 8))) for i in range(requests)]
        jobs = [(h, min(n, len(h.leaves))) for h, n in ((rng.choice(self.histories), n) for n in sizes)]
        async with httpx.AsyncClient(timeout=30) as client:
            sem = asyncio.Semaphore(16)

            async def one(h: WitnessedLog, n: int) -> None:
                async with sem:
                    with contextlib.suppress(httpx.TransportError):  # the witness was killed mid-request
                        await self.submit(client, h, n)

            await asyncio.gather(*(one(h, n) for h, n in jobs))


def inconsistent_pairs(cosigned: list[tuple[int, bytes]], histories: list[WitnessedLog]) -> list[str]:
    """Pairs of cosigned heads that no one history holds both of."""
    bad = []
    for (s1, r1), (s2, r2) in combinations(sorted(set(cosigned)), 2):
        if not any(s2 <= len(h.leaves) and h.root(s1) == r1 and h.root(s2) == r2 for h in histories):
            bad.append(f"({s1}, {r1.hex()[:8]}) and ({s2}, {r2.hex()[:8]})")
    return bad
