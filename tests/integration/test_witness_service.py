"""``sealtrail witness serve`` over HTTP: the tlog-witness statuses, concurrent requests and SIGKILL.

Each test runs the real command as a child process, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sealtrail.core.cosignature import CosignatureSigner
from sealtrail.core.note import Ed25519Signer, open_note
from sealtrail.core.witness import SIZE_MEDIA_TYPE, LogRecord, format_add_checkpoint
from sealtrail.infra.sqlite import SqliteDatabase
from services.witness.app import create_app
from services.witness.config import LogConfig
from services.witness.ports import WitnessStore
from services.witness.sqlite import SCHEMA, SqliteWitnessStore
from tests.support.query import new_database, on_port
from tests.support.serve import cli, free_port
from tests.support.witness import (
    Racer,
    WitnessProcess,
    add_log,
    inconsistent_pairs,
    start_witness,
    witness_key,
)
from tests.support.witnesslog import WitnessedLog, cosigned_size_root


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "witness.db")
    pg_url: str = request.getfixturevalue("pg_url")
    return asyncio.run(new_database(pg_url))


@pytest.fixture
def log() -> WitnessedLog:
    return WitnessedLog(400)


@pytest.fixture
def witness(tmp_path: Path, db: str, log: WitnessedLog) -> Iterator[WitnessProcess]:
    key_file, vkey = witness_key(tmp_path)
    add_log(db, log)
    w = start_witness(key_file, vkey, db)
    yield w
    w.stop()


def _post(w: WitnessProcess, body: bytes) -> httpx.Response:
    return httpx.post(w.url + "/add-checkpoint", content=body, timeout=10)


def test_statuses_follow_the_protocol(witness: WitnessProcess, log: WitnessedLog) -> None:
    """200 with a verifying cosignature line, 409 with text/x.tlog.size, 404, 403, 422, 400, 413."""
    r = _post(witness, log.body(0, 10))
    assert r.status_code == 200 and r.text.startswith("— witness.example/w1 ") and r.text.endswith("\n")
    assert cosigned_size_root(log.signed(10), r.text, witness.verifier) == (10, log.root(10))

    r = _post(witness, log.body(0, 20))
    assert (r.status_code, r.headers["content-type"], r.text) == (409, SIZE_MEDIA_TYPE, "10\n")
    assert _post(witness, log.body(10, 20)).status_code == 200

    assert _post(witness, WitnessedLog(5, origin="example.org/unknown").body(0, 5)).status_code == 404
    assert _post(witness, log.body(20, 30, key=Ed25519Signer.generate(log.origin))).status_code == 403
    assert _post(witness, log.fork(15, 20).body(20, 20)).status_code == 422  # fork at the same size
    assert "refused an inconsistent checkpoint" in witness.err.read_text()  # kept as evidence
    assert _post(witness, log.fork(15, 40).body(20, 40)).status_code == 422  # fork that extends
    assert _post(witness, format_add_checkpoint(20, log.proof(5, 30), log.signed(30))).status_code == 422
    assert _post(witness, format_add_checkpoint(20, [], log.signed(10))).status_code == 400  # rollback
    assert _post(witness, log.body(0, 10)).status_code == 409  # rollback with a fresh old size
    assert _post(witness, b"old x\n\n").status_code == 400
    assert _post(witness, b"old 0\n" + b"A" * 70_000 + b"\n\n").status_code == 413

    r = httpx.get(f"{witness.url}/{hashlib.sha256(log.origin.encode()).hexdigest()}/checkpoint")
    assert r.status_code == 200
    served = open_note(r.text, [log.key.verifier(), witness.verifier])
    assert served.text == log.checkpoint(20).body() and len(served.verified) == 2
    assert httpx.get(f"{witness.url}/{'0' * 64}/checkpoint").status_code == 404

    disabled = cli("witness", "log", "disable", "--origin", log.origin, "--db", witness.db)
    assert disabled.returncode == 0, disabled.stderr
    assert _post(witness, log.body(20, 30)).status_code == 403  # no key left: nothing is cosigned
    add_log(witness.db, log)  # enabled again: it goes on from its record, not from 0
    assert _post(witness, log.body(0, 30)).text == "20\n"


def test_parallel_requests_never_get_two_inconsistent_cosignatures(witness: WitnessProcess,
                                                                   log: WitnessedLog) -> None:
    """Sixteen clients at once submit three forked histories: every cosigned pair is consistent."""
    histories = [log, log.fork(100, 400, tag="a"), log.fork(200, 400, tag="b")]
    racer = Racer(witness.url, witness.verifier, histories)
    asyncio.run(racer.run(300, seed=1))
    assert racer.statuses.get(200, 0) >= 20 and racer.statuses.get(409, 0) > 0, racer.statuses
    assert racer.statuses.get(422, 0) > 0, racer.statuses  # the forks were tried and refused
    assert inconsistent_pairs(racer.cosigned, histories) == []


def test_simultaneous_requests_from_one_size_cosign_one_history(witness: WitnessProcess,
                                                                 log: WitnessedLog) -> None:
    """Twenty rounds of sixteen requests naming the same old size from four branches: the
    compare-and-swap lets one branch through, so no two cosignatures are inconsistent."""
    racer = Racer(witness.url, witness.verifier, [log])
    asyncio.run(racer.burst(20))
    assert inconsistent_pairs(racer.cosigned, racer.histories) == []
    assert racer.statuses.get(200, 0) >= 20 and racer.statuses.get(409, 0) > 0, racer.statuses


def test_sigkill_during_requests_never_leads_to_inconsistent_cosignatures(
        tmp_path: Path, db: str, log: WitnessedLog) -> None:
    """Kill -9 the witness while requests run, five times; after each restart its record covers every
    cosignature it gave out, and no two cosignatures across all runs are inconsistent."""
    key_file, vkey = witness_key(tmp_path)
    add_log(db, log)
    histories = [log, log.fork(100, 400, tag="a"), log.fork(250, 400, tag="b")]
    rng = random.Random(7)
    cosigned: list[tuple[int, bytes]] = []
    for round_ in range(5):
        w = start_witness(key_file, vkey, db)
        racer = Racer(w.url, w.verifier, histories)

        async def race_then_kill(w: WitnessProcess = w, racer: Racer = racer, seed: int = round_) -> None:
            task = asyncio.create_task(racer.run(400, seed=seed))
            # Kill after the first cosignatures (a loaded machine may take a while to give any), then
            # at a random moment: each round dies mid-requests and still adds to what is checked.
            started = time.monotonic()
            while len(racer.cosigned) < 2 and not task.done() and time.monotonic() - started < 20:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
            await asyncio.sleep(rng.uniform(0.0, 0.8))
            w.stop(signal.SIGKILL)
            await task

        asyncio.run(race_then_kill())
        cosigned += racer.cosigned
        w = start_witness(key_file, vkey, db)
        try:
            r = httpx.post(w.url + "/add-checkpoint", content=log.body(0, 1), timeout=10)
            recorded = int(r.text) if r.status_code == 409 else 1
            assert max((s for s, _ in cosigned), default=0) <= recorded
        finally:
            w.stop()
        time.sleep(0.05)
    assert len(cosigned) > 5
    assert inconsistent_pairs(cosigned, histories) == []


def test_logs_file_adds_logs_at_start_and_a_bad_one_stops_it(tmp_path: Path) -> None:
    """--logs-file: its logs are witnessed from the start; a bad file is one line naming the field."""
    a, b = WitnessedLog(8, origin="example.org/a"), WitnessedLog(8, origin="example.org/b")
    logs = tmp_path / "logs.toml"
    logs.write_text("".join(f'[[log]]\norigin = "{x.origin}"\nvkeys = ["{x.vkey}"]\n' for x in (a, b)))
    key_file, vkey = witness_key(tmp_path)
    db = str(tmp_path / "witness.db")
    w = start_witness(key_file, vkey, db, extra=["--logs-file", str(logs)])
    try:
        for x in (a, b):
            assert _post(w, x.body(0, 8)).status_code == 200
    finally:
        w.stop()
    listed = cli("witness", "log", "list", "--db", db)
    assert listed.returncode == 0 and "example.org/a\t8\t" in listed.stdout and "example.org/b\t8\t" in listed.stdout
    logs.write_text('[[log]]\norigin = "example.org/a"\nvkeys = ["nope"]\n')
    done = cli("witness", "serve", "--key-file", str(key_file), "--db", db, "--logs-file", str(logs),
               "--port", str(free_port()))
    assert done.returncode == 1 and "log[0].vkeys[0]" in done.stderr and done.stderr.count("\n") == 1


class _NoCompareStore(SqliteWitnessStore):
    """The store without its defence: advance writes whatever the record now holds."""

    async def advance(self, origin: str, *, expected: LogRecord, size: int, root: bytes, note: str) -> bool:
        current = await self.get_log(origin)
        assert current is not None
        return await super().advance(origin, expected=current, size=size, root=root, note=note)


async def test_the_race_test_catches_a_witness_without_compare_and_swap(tmp_path: Path) -> None:
    """The simultaneous-requests race, in process, against a witness whose store skips the comparison:
    it cosigns two branches at one size. This is what the compare-and-swap prevents."""
    log = WitnessedLog(400)
    signer = CosignatureSigner.generate("witness.example/naive")

    async def open_store() -> WitnessStore:
        store = _NoCompareStore(db=SqliteDatabase(path=tmp_path / "naive.db"))
        await store._db.write(lambda c: c.execute(SCHEMA))
        return store

    app = create_app(open_store, signer, logs=[LogConfig(log.origin, (log.vkey,))])
    async with app.router.lifespan_context(app), on_port(app) as url:
        racer = Racer(url, signer.verifier(), [log])
        await racer.burst(50)  # a round may happen to serialise; fifty make missing the race negligible
    assert inconsistent_pairs(racer.cosigned, racer.histories)
