"""The log side of tlog-witness (sealtrail.infra.witnessclient) against real ``sealtrail witness``
processes, and against witnesses that are down, slow, answer garbage or sign with another key."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import Response

from sealtrail.core.cosignature import CosignatureSigner
from sealtrail.core.note import Ed25519Signer, NoteSignature, open_note
from sealtrail.core.quorum import QuorumError, WitnessPolicy
from sealtrail.core.witnessing import WitnessConfig, with_cosignatures
from sealtrail.errors import (
    InconsistentCheckpointError,
    NotFoundError,
    PermissionDeniedError,
    SignatureError,
    UnavailableError,
)
from sealtrail.infra.witnessclient import WitnessClient, WitnessLoop
from tests.support.query import on_port
from tests.support.serve import free_port
from tests.support.witness import WitnessProcess, add_log, start_witness, witness_key
from tests.support.witnesslog import WitnessedLog


@pytest.fixture
def log() -> WitnessedLog:
    return WitnessedLog(200)


def _start(tmp: Path, log: WitnessedLog, name: str) -> WitnessProcess:
    key_file, vkey = witness_key(tmp, name)
    db = str(tmp / f"{name.replace('/', '_')}.db")
    add_log(db, log)
    return start_witness(key_file, vkey, db)


@pytest.fixture
def witnesses(tmp_path: Path, log: WitnessedLog) -> Iterator[list[WitnessProcess]]:
    started = [_start(tmp_path, log, f"witness.example/w{n}") for n in (1, 2)]
    yield started
    for w in started:
        w.stop()


def _config(w: WitnessProcess, name: str = "w") -> WitnessConfig:
    return WitnessConfig(name, w.verifier, w.url)


def _proofs(log: WitnessedLog):  # type: ignore[no-untyped-def]
    async def proof(old: int, new: int) -> Sequence[bytes]:
        return log.proof(old, new)
    return proof


async def test_client_learns_the_size_and_sends_proofs(witnesses: list[WitnessProcess], log: WitnessedLog) -> None:
    """Sizes 10, 20, 20, 150 cosign; a new client (size unknown) recovers through the 409 answer."""
    w = witnesses[0]
    async with httpx.AsyncClient() as http:
        client = WitnessClient(_config(w), http=http)
        for size in (10, 20, 20, 150):
            sig = await client.add_checkpoint(log.signed(size), size, _proofs(log))
            note = with_cosignatures(log.signed(size), [sig])
            assert len(open_note(note, [log.key.verifier(), w.verifier]).verified) == 2
        fresh = WitnessClient(_config(w), http=http)
        await fresh.add_checkpoint(log.signed(180), 180, _proofs(log))
        assert fresh.known_size == 180


async def test_refusals_are_named(tmp_path: Path, witnesses: list[WitnessProcess], log: WitnessedLog) -> None:
    """404 unknown log, 403 wrong log key, 422 fork, and a witness ahead of the checkpoint (asked all
    the same, it answers 409 with its size)."""
    w = witnesses[0]
    async with httpx.AsyncClient() as http:
        client = WitnessClient(_config(w), http=http)
        await client.add_checkpoint(log.signed(50), 50, _proofs(log))
        stranger = WitnessedLog(5, origin="example.org/stranger")
        with pytest.raises(NotFoundError, match="404"):
            await WitnessClient(_config(w), http=http).add_checkpoint(stranger.signed(5), 5, _proofs(stranger))
        with pytest.raises(PermissionDeniedError, match="403"):
            await client.add_checkpoint(log.signed(60, key=Ed25519Signer.generate(log.origin)), 60, _proofs(log))
        fork = log.fork(30, 80)
        with pytest.raises(InconsistentCheckpointError, match="422"):
            await client.add_checkpoint(fork.signed(80), 80, _proofs(fork))
        with pytest.raises(InconsistentCheckpointError, match="tree size 40: it cosigned size 50 \\(409\\)"):
            await client.add_checkpoint(log.signed(40), 40, _proofs(log))


async def test_a_cosignature_under_another_key_is_refused(witnesses: list[WitnessProcess],
                                                          log: WitnessedLog) -> None:
    """The witness answers 200, but not with the key the log was configured with: SignatureError."""
    wrong = CosignatureSigner.generate("witness.example/w1").verifier()
    async with httpx.AsyncClient() as http:
        client = WitnessClient(WitnessConfig("w", wrong, witnesses[0].url), http=http)
        with pytest.raises(SignatureError, match=r"no cosignature by witness\.example/w1"):
            await client.add_checkpoint(log.signed(10), 10, _proofs(log))


def _bad_witness(mode: str) -> FastAPI:
    app = FastAPI()

    @app.post("/add-checkpoint")
    async def add_checkpoint() -> Response:
        if mode == "slow":
            await asyncio.sleep(5)
        if mode == "garbage-size":
            return Response("many\n", status_code=409, media_type="text/x.tlog.size")
        return Response("— not a signature\n" if mode == "garbage" else "oops", status_code=200)

    return app


@pytest.fixture
async def bad_witness(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    async with on_port(_bad_witness(request.param)) as url:
        yield url


@pytest.mark.parametrize(("bad_witness", "error"), [("garbage", SignatureError), ("slow", UnavailableError),
                                                    ("garbage-size", Exception)], indirect=["bad_witness"])
async def test_garbage_and_slow_witnesses_are_errors(bad_witness: str, error: type[Exception],
                                                     log: WitnessedLog) -> None:
    """Garbage answers and timeouts are errors of that witness only."""
    verifier = CosignatureSigner.generate("witness.example/bad").verifier()
    async with httpx.AsyncClient() as http:
        client = WitnessClient(WitnessConfig("bad", verifier, bad_witness), http=http, timeout_s=0.5)
        with pytest.raises(error):
            await client.add_checkpoint(log.signed(10), 10, _proofs(log))


async def test_a_down_witness_is_unavailable(log: WitnessedLog) -> None:
    """Connection refused: UnavailableError."""
    verifier = CosignatureSigner.generate("witness.example/down").verifier()
    async with httpx.AsyncClient() as http:
        client = WitnessClient(WitnessConfig("down", verifier, f"http://127.0.0.1:{free_port()}"), http=http)
        with pytest.raises(UnavailableError, match="unreachable"):
            await client.add_checkpoint(log.signed(10), 10, _proofs(log))


async def test_loop_reaches_quorum_despite_a_down_and_a_garbage_witness(
        witnesses: list[WitnessProcess], log: WitnessedLog) -> None:
    """Two real witnesses, one down, one answering garbage; quorum 2: every offered checkpoint becomes
    witnessed, offering never waits, the kept notes verify with a quorum policy, and the lag drops to 0."""
    kept: dict[int, list[NoteSignature]] = {}

    async def sink(name: str, size: int, sig: NoteSignature) -> None:
        kept.setdefault(size, []).append(sig)

    async with on_port(_bad_witness("garbage")) as garbage_url, httpx.AsyncClient() as http:
        down = WitnessConfig("down", CosignatureSigner.generate("d").verifier(), f"http://127.0.0.1:{free_port()}")
        garbage = WitnessConfig("garbage", CosignatureSigner.generate("g").verifier(), garbage_url)
        configs = [_config(witnesses[0], "w1"), _config(witnesses[1], "w2"), down, garbage]
        loop = WitnessLoop([WitnessClient(c, http=http, timeout_s=2) for c in configs], _proofs(log), sink, quorum=2)
        task = asyncio.create_task(loop.run())
        try:
            for size in range(10, 201, 10):
                started = time.perf_counter()
                loop.offer(log.signed(size), size)
                assert time.perf_counter() - started < 0.01  # never waits for a witness
                await asyncio.sleep(0.02)
            deadline = time.monotonic() + 20
            while loop.witnessed_size < 200 and time.monotonic() < deadline:  # noqa: ASYNC110 - polls a counter
                await asyncio.sleep(0.05)
        finally:
            task.cancel()
    assert loop.witnessed_size == 200 and loop.lag() == (0, 0.0)
    status = loop.status()
    assert status["down"]["failures"] and "unreachable" in str(status["down"]["last_error"])
    assert status["garbage"]["failures"] and status["w1"]["cosigned"] == 200
    policy = WitnessPolicy.from_vkeys([w.vkey for w in witnesses], 2)
    assert len(policy.check(with_cosignatures(log.signed(200), kept[200])).names) == 2


async def test_rollback_fork_and_rewritten_history_never_reach_quorum(
        witnesses: list[WitnessProcess], log: WitnessedLog) -> None:
    """After size 100 is witnessed, a log that rolls back, forks at 100, or rewrites an entry below 100
    and signs again gets no cosignature from any witness: the lag rises and a quorum check of what it
    signed fails naming the checkpoint."""
    policy = WitnessPolicy.from_vkeys([w.vkey for w in witnesses], 2)
    kept: dict[int, list[NoteSignature]] = {}

    async def sink(name: str, size: int, sig: NoteSignature) -> None:
        kept.setdefault(size, []).append(sig)

    async def run(history: WitnessedLog, sizes: list[int]) -> WitnessLoop:
        async with httpx.AsyncClient() as http:
            clients = [WitnessClient(_config(w, f"w{n}"), http=http, timeout_s=2) for n, w in enumerate(witnesses)]
            loop = WitnessLoop(clients, _proofs(history), sink, quorum=2)
            task = asyncio.create_task(loop.run())
            for size in sizes:
                loop.offer(history.signed(size), size)
                await asyncio.sleep(0.3)
            task.cancel()
        return loop

    honest = await run(log, [100])
    assert honest.witnessed_size == 100
    attacks = {"rollback": (log, 60), "fork at the same size": (log.fork(70, 200, tag="x"), 100),
               "rewritten history": (log.fork(3, 200, tag="y"), 150)}
    for what, (history, size) in attacks.items():
        before = {n: len(v) for n, v in kept.items()}
        loop = await run(history, [size])
        assert {n: len(v) for n, v in kept.items()} == before, what
        assert loop.witnessed_size == 0 and loop.lag()[0] == size, what
        assert all(s["cosigned"] == 0 and s["failures"] for s in loop.status().values()), what
        with pytest.raises(QuorumError, match=f"tree size {size} carries 0 of the 2"):
            policy.check(history.signed(size))  # what the log signed, with every cosignature it got


async def test_every_offered_checkpoint_is_cosigned_in_order(witnesses: list[WitnessProcess],
                                                             log: WitnessedLog) -> None:
    """Checkpoints offered faster than the witnesses answer are each submitted, oldest first: every
    one of them reaches the quorum, not only the latest."""
    kept: dict[int, set[str]] = {}

    async def sink(name: str, size: int, sig: NoteSignature) -> None:
        kept.setdefault(size, set()).add(name)

    sizes = list(range(5, 81, 5))  # 16 checkpoints, no more than MAX_BEHIND
    async with httpx.AsyncClient() as http:
        loop = WitnessLoop([WitnessClient(_config(w, f"w{n}"), http=http) for n, w in enumerate(witnesses)],
                           _proofs(log), sink, quorum=2)
        task = asyncio.create_task(loop.run())
        try:
            for size in sizes:
                loop.offer(log.signed(size), size)
            deadline = time.monotonic() + 20
            while loop.witnessed_size < sizes[-1] and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        finally:
            task.cancel()
    assert {s: len(names) for s, names in kept.items()} == dict.fromkeys(sizes, 2)
    assert loop.lag() == (0, 0.0)


async def test_a_rollback_or_fork_offered_to_a_running_loop_is_submitted_and_refused(
        witnesses: list[WitnessProcess], log: WitnessedLog) -> None:
    """One loop, as in a running ledger: after 100 is witnessed, the log offers a smaller checkpoint
    of another history, then one of that history at 100, then at 150. Each is submitted to every
    witness (not skipped as old), none is cosigned, and the lag counts from the new history."""
    kept: dict[int, list[NoteSignature]] = {}

    async def sink(name: str, size: int, sig: NoteSignature) -> None:
        kept.setdefault(size, []).append(sig)

    forked = log.fork(40, 200, tag="restored")
    async with httpx.AsyncClient() as http:
        async def proof(old: int, new: int) -> Sequence[bytes]:
            return (log if current[0] is log else forked).proof(old, new)

        current: list[WitnessedLog] = [log]
        loop = WitnessLoop([WitnessClient(_config(w, f"w{n}"), http=http) for n, w in enumerate(witnesses)],
                           proof, sink, quorum=2)
        task = asyncio.create_task(loop.run())
        try:
            loop.offer(log.signed(100), 100)
            deadline = time.monotonic() + 10
            while loop.witnessed_size < 100 and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            assert loop.witnessed_size == 100
            current[0] = forked
            for size in (60, 100, 150):
                before = {n: s["failures"] for n, s in loop.status().items()}
                loop.offer(forked.signed(size), size)
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline and not all(  # noqa: ASYNC110
                        s["failures"] != before[n] for n, s in loop.status().items()):
                    await asyncio.sleep(0.05)
                assert all(s["failures"] != before[n] for n, s in loop.status().items()), (size, loop.status())
                assert loop.witnessed_size == 0 and loop.lag()[0] == size
        finally:
            task.cancel()
    assert set(kept) == {100}, "nothing of the other history was cosigned"
