"""Attacks by the log operator, made in the database of a running ``sealtrail serve`` witnessed by
litewitness, omniwitness and ``sealtrail witness`` (quorum 2).

After size 61 is witnessed, the log's tables (entries, payloads, tree nodes, batches, checkpoints
and the head) are put back to a copy taken at size 21, as an operator restoring an old backup
would, and the ledger is left to go on: it appends new events from size 21 and signs

- a **rolled-back** checkpoint (size 41, below what the witnesses cosigned),
- a **fork at the same size** (size 61, another root),
- a **re-signed history** (size 81, whose consistency proof from 61 is built on the rewritten entries).

Each one: every witness refuses it (the served checkpoint carries no cosignature, and each
witness's failure counter rises by at least two after it is signed, so at least one attempt was on
it), the lag gauge counts its entries, and ``sealtrail verify
--witness x3 --quorum 2`` fails naming its tree size; with ``--state`` from before the attack,
verify also fails.

And a witness that answers garbage, signs with another key than its configured one, or is down
does not stop the ledger: the honest witnesses still make the quorum.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from sealtrail.core.checkpoint import parse_checkpoint
from sealtrail.core.cosignature import CosignatureSigner
from sealtrail.core.note import parse_note
from sealtrail.core.quorum import WitnessPolicy
from tests.support.serve import (
    TENANT,
    cli,
    free_port,
    send_events,
    serve_event,
    start_serve,
    wait_for_checkpoint,
)
from tests.support.thirdparty_witness import (
    BuildError,
    SshAgent,
    cosigned_by_all,
    litewitness_binaries,
    omniwitness_binary,
    sign_first_checkpoint,
    three_witnesses,
    witness_table,
)
from tests.support.witness import WitnessProcess, start_witness, witness_key

LOG_TABLES = ("entries", "payloads", "payload_keys", "tree_nodes", "batches", "checkpoints")


@pytest.fixture(scope="module")
def binaries() -> tuple[Path, Path]:
    try:
        return litewitness_binaries(), omniwitness_binary()
    except BuildError as e:
        pytest.fail(str(e))


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[SshAgent]:
    a = SshAgent(tmp_path)
    yield a
    a.stop()


def snapshot(db: Path, to: Path) -> None:
    """A consistent copy of the live database (SQLite's online backup)."""
    src, dst = sqlite3.connect(db, timeout=30), sqlite3.connect(to)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()


def restore_log(db: Path, backup: Path, log_id: str) -> None:
    """Put ``log_id``'s tables and head back to the backup's, in one transaction, under the running ledger."""
    conn = sqlite3.connect(db, timeout=30, isolation_level=None)
    try:
        conn.execute("ATTACH DATABASE ? AS b", (str(backup),))
        conn.execute("BEGIN IMMEDIATE")
        for table in LOG_TABLES:
            conn.execute(f"DELETE FROM main.{table} WHERE log_id = ?", (log_id,))
            conn.execute(f"INSERT INTO main.{table} SELECT * FROM b.{table} WHERE log_id = ?", (log_id,))
        conn.execute("UPDATE main.logs SET (size, root, chain_head, compact) ="
                     " (SELECT size, root, chain_head, compact FROM b.logs WHERE b.logs.log_id = ?)"
                     " WHERE log_id = ?", (log_id, log_id))
        conn.execute("COMMIT")
        conn.execute("DETACH DATABASE b")
    finally:
        conn.close()


def _metric(text: str, name: str, label: str, value: str) -> float:
    match = re.search(rf'^{name}{{{label}="{re.escape(value)}"}} (\S+)$', text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def _failures(url: str, names: list[str]) -> dict[str, float]:
    text = httpx.get(url + "/metrics").text
    return {n: _metric(text, "sealtrail_ledger_witness_failures_total", "witness", n) for n in names}


def test_rollback_fork_and_rewritten_history_are_refused_by_every_witness(
        binaries: tuple[Path, Path], agent: SshAgent, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    litewitness, omniwitness = binaries
    data = tmp_path / "data"
    signed = sign_first_checkpoint(data)
    auditor, gateway, headers = signed.auditor, signed.gateway, signed.headers
    origin, checkpoint_vkey = signed.origin, signed.checkpoint_vkey
    witnesses = three_witnesses(litewitness, omniwitness, agent, tmp_path, origin, checkpoint_vkey)
    names = list(witnesses)
    config = tmp_path / "witnesses.toml"
    config.write_text("quorum = 2\nretry_max_s = 2\n"
                      + "".join(witness_table(n, w.vkey, w.url) for n, w in witnesses.items()))
    monkeypatch.setenv("SEALTRAIL_WITNESS_CONFIG", str(config))
    policy = WitnessPolicy.from_vkeys([w.vkey for w in witnesses.values()], 2)
    witness_args = [a for w in witnesses.values() for a in ("--witness", w.vkey)]
    state = tmp_path / "auditor.state"
    served = start_serve(data)
    try:
        asyncio.run(send_events(served.url, gateway, [serve_event(i) for i in range(1, 21)]))
        cosigned_by_all(served.url, headers, policy, 21)
        backup = tmp_path / "backup-at-21.db"
        snapshot(data / "sealtrail.db", backup)
        asyncio.run(send_events(served.url, gateway, [serve_event(i) for i in range(21, 61)]))
        honest = cosigned_by_all(served.url, headers, policy, 61)
        assert parse_checkpoint(parse_note(honest).text).size == 61
        kept = cli("verify", "--url", served.url, "--log", TENANT, "--token", auditor, *witness_args,
                   "--quorum", "2", "--state", str(state))
        assert kept.returncode == 0, kept.stderr

        restore_log(data / "sealtrail.db", backup, TENANT)
        results: dict[str, tuple[subprocess.CompletedProcess[str], subprocess.CompletedProcess[str]]] = {}
        for what, size in (("rollback", 41), ("fork at the same size", 61), ("rewritten history", 81)):
            sent = asyncio.run(send_events(served.url, gateway, [serve_event(1000 + size + i) for i in range(20)]))
            assert len(sent) == 20, what
            assert wait_for_checkpoint(served.url, auditor, TENANT, size) == size, what
            before = _failures(served.url, names)
            _refused_everywhere(served.url, headers, policy, names, before, size, what)
            results[what] = (
                cli("verify", "--url", served.url, "--log", TENANT, "--token", auditor, *witness_args, "--quorum", "2"),
                cli("verify", "--url", served.url, "--log", TENANT, "--token", auditor, *witness_args, "--quorum", "2",
                    "--state", str(state)))
    finally:
        served.stop()
        for w in witnesses.values():
            w.stop()
    for what, size in (("rollback", 41), ("fork at the same size", 61), ("rewritten history", 81)):
        done, with_state = results[what]
        assert done.returncode == 1, (what, done.stdout, done.stderr)
        assert f"checkpoint at tree size {size} carries 0 of the 2 witness cosignatures" in done.stderr, (
            what, done.stderr)
        assert with_state.returncode == 1, (what, with_state.stdout)


def _refused_everywhere(url: str, headers: dict[str, str], policy: WitnessPolicy, names: list[str],
                        before: dict[str, float], size: int, what: str, timeout: float = 150) -> None:
    """Wait until every witness failed twice more after the checkpoint of ``size`` was signed (so
    at least one of its attempts was on that checkpoint: after a failure a witness is given the
    latest) and the lag gauge counts the checkpoint's entries; it still has no cosignature."""
    deadline = time.monotonic() + timeout
    failures, lag = before, 0.0
    while time.monotonic() < deadline:
        failures = _failures(url, names)
        lag = _metric(httpx.get(url + "/metrics").text, "sealtrail_ledger_witness_lag_entries", "log", TENANT)
        if all(failures[n] >= before[n] + 2 for n in names) and lag == size:
            break
        time.sleep(0.2)
    assert all(failures[n] >= before[n] + 2 for n in names), (what, before, failures)
    assert lag == size, (what, lag)
    note = httpx.get(f"{url}/v1/logs/{TENANT}/checkpoint", headers=headers)
    assert parse_checkpoint(parse_note(note.text).text).size == size, what
    assert policy.cosigners(note.text).names == (), (what, note.text)
    assert note.headers["Sealtrail-Witness-Cosignatures"] == "0", what
    metrics = httpx.get(url + "/metrics").text
    assert _metric(metrics, "sealtrail_ledger_witness_lag_seconds", "log", TENANT) > 0, what
    listed = httpx.get(f"{url}/v1/logs/{TENANT}/checkpoints", params={"from": size, "to": size},
                       headers=headers).json()["checkpoints"]
    assert listed and listed[0]["witnesses"] == {"cosigners": [], "quorum": 2, "witnessed": False}, (what, listed)


class _Garbage(BaseHTTPRequestHandler):
    """A witness that answers every add-checkpoint with 200 and bytes that are no cosignature."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        body = b"\xe2\x80\x94 garbage.example/w AAAA\n\x00\xff not a signature line\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


def test_garbage_wrong_key_and_down_witnesses_do_not_stop_the_ledger(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Two honest sealtrail witnesses, and one answering garbage, one signing with another key than
    its configured vkey, one down; quorum 2: the ledger logs and signs as usual, every checkpoint
    reaches the quorum with the two honest cosignatures only, and the bad ones' failures count."""
    data = tmp_path / "data"
    signed = sign_first_checkpoint(data)
    auditor, gateway, headers = signed.auditor, signed.gateway, signed.headers
    origin, checkpoint_vkey = signed.origin, signed.checkpoint_vkey
    started: list[WitnessProcess] = []
    garbage = ThreadingHTTPServer(("127.0.0.1", 0), _Garbage)
    threading.Thread(target=garbage.serve_forever, daemon=True).start()
    try:
        tables = []
        for name in ("honest1", "honest2", "wrongkey"):
            key_file, vkey = witness_key(tmp_path, f"witness.example/{name}")
            db = str(tmp_path / f"{name}.db")
            assert cli("witness", "log", "add", "--origin", origin, "--vkey", checkpoint_vkey,
                       "--db", db).returncode == 0
            started.append(start_witness(key_file, vkey, db))
            if name == "wrongkey":  # configured with another key of the same name
                vkey = CosignatureSigner.generate("witness.example/wrongkey").verifier().vkey()
            tables.append(witness_table(name, vkey, started[-1].url))
        tables.append(witness_table("garbage", CosignatureSigner.generate("garbage.example/w").verifier().vkey(),
                                    f"http://127.0.0.1:{garbage.server_address[1]}"))
        tables.append(witness_table("down", CosignatureSigner.generate("down.example/w").verifier().vkey(),
                                    f"http://127.0.0.1:{free_port()}"))
        config = tmp_path / "witnesses.toml"
        config.write_text("quorum = 2\nretry_max_s = 2\n" + "".join(tables))
        monkeypatch.setenv("SEALTRAIL_WITNESS_CONFIG", str(config))
        policy = WitnessPolicy.from_vkeys([w.vkey for w in started[:2]], 2)
        served = start_serve(data)
        try:
            began = time.monotonic()
            for start in range(1, 121, 30):
                sent = asyncio.run(send_events(served.url, gateway, [serve_event(i) for i in range(start, start + 30)]))
                assert len(sent) == 30
                wait_for_checkpoint(served.url, auditor, TENANT, start + 30, timeout=30)
            signed_in = time.monotonic() - began
            cosigned_by_all(served.url, headers, policy, 121)
            listed = httpx.get(f"{served.url}/v1/logs/{TENANT}/checkpoints", headers=headers).json()["checkpoints"]
            failures = _failures(served.url, ["honest1", "honest2", "wrongkey", "garbage", "down"])
        finally:
            served.stop()
    finally:
        garbage.shutdown()
        for w in started:
            w.stop()
    assert signed_in < 30, signed_in
    for item in listed:
        assert item["witnesses"]["witnessed"], item
        assert sorted(item["witnesses"]["cosigners"]) == ["witness.example/honest1", "witness.example/honest2"], item
        assert "garbage.example" not in item["note"] and "down.example" not in item["note"], item
    assert failures["honest1"] == failures["honest2"] == 0, failures
    assert failures["wrongkey"] > 0 and failures["garbage"] > 0 and failures["down"] > 0, failures
