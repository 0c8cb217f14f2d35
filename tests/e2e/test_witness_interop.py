"""Witness interoperability, both ways, with software that shares no code with Sealtrail.

- ``tests/interop/witnesslog``: a log built on github.com/transparency-dev/merkle and signed with
  golang.org/x/mod/sumdb/note submits checkpoints to ``sealtrail witness`` and verifies its
  cosignatures with github.com/transparency-dev/formats; forks, rollbacks, bad proofs, wrong keys,
  unknown logs and malformed bodies must get the protocol's statuses.
- litewitness from filippo.io/torchwood v0.6.1 (pinned by tests/interop/litewitness/go.mod and
  go.sum, built once into ~/.cache/sealtrail/litewitness-v0.6.1/) cosigns the checkpoints of
  ``sealtrail serve``, submitted by Sealtrail's witness client, and ``sealtrail verify proof
  --witness`` accepts them.
- ``sealtrail serve --witness-config`` with litewitness and ``sealtrail witness``, quorum 2: every
  checkpoint is cosigned by both and ``sealtrail verify --witness ... --quorum 2`` passes.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
import pytest

from sealtrail.core.checkpoint import parse_checkpoint
from sealtrail.core.cosignature import CosignatureVerifier
from sealtrail.core.note import b64decode, parse_note
from sealtrail.core.tlogproof import parse_proof
from sealtrail.core.witnessing import WitnessConfig, with_cosignatures
from sealtrail.devstack._proc import apt_install
from sealtrail.infra.witnessclient import WitnessClient
from tests.support.serve import (
    TENANT,
    cli,
    create_key,
    free_port,
    send_events,
    serve_event,
    start_serve,
    wait_for_checkpoint,
)
from tests.support.witness import start_witness, witness_key

INTEROP = Path(__file__).resolve().parents[1] / "interop"
GO_ENV = {"GOTOOLCHAIN": "local", "GOFLAGS": "-mod=readonly", "CGO_ENABLED": "0"}
LITEWITNESS_VERSION = "v0.6.1"
CACHE = Path.home() / ".cache" / "sealtrail" / f"litewitness-{LITEWITNESS_VERSION}"


def _go() -> str:
    go = shutil.which("go")
    if go is None:
        pytest.fail("the Go toolchain is needed to build tests/interop programs and is not on PATH")
    return go


@pytest.fixture(scope="module")
def witnesslog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Go log, built from its pinned go.mod and go.sum (modules come from the Go proxy)."""
    binary = tmp_path_factory.mktemp("witnesslog") / "witnesslog"
    done = subprocess.run([_go(), "build", "-o", str(binary), "."], cwd=INTEROP / "witnesslog",
                          env={**os.environ, **GO_ENV}, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        pytest.fail(f"building tests/interop/witnesslog failed:\n{done.stderr[-3000:]}")
    return binary


@pytest.fixture(scope="module")
def litewitness() -> Path:
    """litewitness and witnessctl at the pinned version, built once and cached."""
    if not ((CACHE / "litewitness").exists() and (CACHE / "witnessctl").exists()):
        CACHE.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            [_go(), "build", "-o", str(CACHE) + "/", "filippo.io/torchwood/cmd/litewitness",
             "filippo.io/torchwood/cmd/witnessctl"], cwd=INTEROP / "litewitness", env={**os.environ, **GO_ENV},
            capture_output=True, text=True, timeout=1200, check=False)
        if done.returncode != 0:
            pytest.fail(f"building litewitness {LITEWITNESS_VERSION} failed:\n{done.stderr[-3000:]}")
    return CACHE


def test_a_go_log_is_witnessed_by_sealtrail_witness(witnesslog: Path, tmp_path: Path) -> None:
    """Eleven checkpoints cosigned and verified by the Go libraries; eight refusals with the right status."""
    keys = subprocess.run([str(witnesslog), "keygen", "-origin", "example.org/go-log"], capture_output=True,
                          text=True, timeout=60, check=True).stdout.split()
    skey, vkey = keys
    key_file, wvkey = witness_key(tmp_path)
    db = str(tmp_path / "witness.db")
    added = cli("witness", "log", "add", "--origin", "example.org/go-log", "--vkey", vkey, "--db", db)
    assert added.returncode == 0, added.stderr
    w = start_witness(key_file, wvkey, db)
    try:
        done = subprocess.run([str(witnesslog), "run", "-skey", skey, "-vkey", vkey, "-url", w.url,
                               "-witness-vkey", wvkey], capture_output=True, text=True, timeout=300, check=False)
    finally:
        w.stop()
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["cosigned"] == 11 and summary["size"] == 300


class _Agent:
    """A dedicated ssh-agent holding one new Ed25519 key, as litewitness takes its key."""

    def __init__(self, tmp: Path) -> None:
        if not all(shutil.which(t) for t in ("ssh-agent", "ssh-add", "ssh-keygen")):
            apt_install(["openssh-client"], why="ssh-agent, ssh-add and ssh-keygen (litewitness's key) are missing")
        self.sock = tmp / "agent.sock"
        self.proc = subprocess.Popen(["ssh-agent", "-D", "-a", str(self.sock)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not self.sock.exists():
            if time.monotonic() > deadline:
                raise RuntimeError("ssh-agent did not create its socket")
            time.sleep(0.02)
        key = tmp / "witness_key"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True, timeout=30)
        env = {**os.environ, "SSH_AUTH_SOCK": str(self.sock)}
        subprocess.run(["ssh-add", "-q", str(key)], env=env, check=True, timeout=30, capture_output=True)
        out = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", f"{key}.pub"], capture_output=True,
                             text=True, check=True, timeout=30).stdout
        self.fingerprint = out.split()[1]

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=10)


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[_Agent]:
    a = _Agent(tmp_path)
    yield a
    a.stop()


def _start_litewitness(bin_dir: Path, agent: _Agent, db: Path, tmp: Path) -> tuple[subprocess.Popen[bytes], str,
                                                                                    Path]:
    port = free_port()
    err = tmp / "litewitness.err"
    with open(err, "wb") as e:
        proc = subprocess.Popen([str(bin_dir / "litewitness"), "-db", str(db), "-name", "litewitness.example/w",
                                 "-key", agent.fingerprint, "-ssh-agent", str(agent.sock),
                                 "-listen", f"127.0.0.1:{port}"], stdout=e, stderr=e)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        match = re.search(r"vkey=(\S+)", err.read_text())
        if match and proc.poll() is None:
            try:
                httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
                return proc, match.group(1).strip('"'), err
            except httpx.HTTPError:
                pass
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"litewitness did not start: {err.read_text()[-2000:]}")


def test_litewitness_cosigns_sealtrail_checkpoints(litewitness: Path, agent: _Agent, tmp_path: Path) -> None:
    """sealtrail serve signs checkpoints; Sealtrail's witness client submits them to litewitness (a new
    log first, then with a consistency proof from the query API); a tlog-proof carrying litewitness's
    cosignature passes ``sealtrail verify proof --witness``, and fails without it."""
    served = start_serve(tmp_path / "data")
    lw: subprocess.Popen[bytes] | None = None
    try:
        auditor = create_key(served, "auditor")
        headers = {"Authorization": f"Bearer {auditor}"}
        keys = httpx.get(served.url + "/v1/keys", headers=headers).json()["keys"]
        log_vkeys = [k["vkey"] for k in keys if k["purpose"] in ("checkpoint", "cosign")]
        checkpoint_vkey = next(k["vkey"] for k in keys if k["purpose"] == "checkpoint")
        ids = asyncio.run(send_events(served.url, served.tokens["gateway"], [serve_event(i) for i in range(30)]))
        wait_for_checkpoint(served.url, auditor, TENANT, 30)
        first = httpx.get(f"{served.url}/v1/logs/{TENANT}/checkpoint", headers=headers).text
        origin = parse_checkpoint(parse_note(first).text).origin
        db = tmp_path / "litewitness.db"
        for args in (["add-log", "-db", str(db), "-origin", origin],
                     ["add-key", "-db", str(db), "-origin", origin, "-key", checkpoint_vkey]):
            done = subprocess.run([str(litewitness / "witnessctl"), *args], capture_output=True, text=True,
                                  timeout=60, check=False)
            assert done.returncode == 0, done.stderr
        lw, lw_vkey, _ = _start_litewitness(litewitness, agent, db, tmp_path)
        config = WitnessConfig("litewitness", CosignatureVerifier.from_vkey(lw_vkey), f"http://127.0.0.1:{_port(lw)}")

        async def go(note: str) -> str:
            async with httpx.AsyncClient() as http:
                async def proof(old: int, new: int) -> Sequence[bytes]:
                    r = await http.get(f"{served.url}/v1/logs/{TENANT}/proof/consistency",
                                       params={"from": old, "to": new}, headers=headers)
                    return [b64decode(h, "proof") for h in r.json()["proof"]]

                client = WitnessClient(config, http=http, known_size=known[0])
                size = parse_checkpoint(parse_note(note).text).size
                cosignature = await client.add_checkpoint(note, size, proof)
                known[0] = client.known_size
                return with_cosignatures(note, [cosignature])

        known = [0]
        asyncio.run(go(first))  # a log new to litewitness: old size 0
        asyncio.run(send_events(served.url, served.tokens["gateway"], [serve_event(i) for i in range(30, 50)]))
        wait_for_checkpoint(served.url, auditor, TENANT, 50)
        latest = httpx.get(f"{served.url}/v1/logs/{TENANT}/checkpoint", headers=headers).text
        witnessed = asyncio.run(go(latest))  # from size 30, with a consistency proof
        proof_text = httpx.get(f"{served.url}/v1/events/{ids[3]}/tlog-proof", headers=headers).text
        parsed = parse_proof(proof_text)
        entry = httpx.get(f"{served.url}/v1/logs/{TENANT}/entries",
                          params={"start": parsed.index, "end": parsed.index + 1}, headers=headers).json()
    finally:
        if lw is not None:
            lw.send_signal(signal.SIGINT)
            lw.wait(timeout=10)
        served.stop()
    assert parse_note(parsed.note).text == parse_note(witnessed).text, "the proof is under the witnessed checkpoint"
    cosigned_file = tmp_path / "cosigned.tlog-proof"
    cosigned_file.write_text(proof_text.replace(parsed.note, witnessed))
    entry_file = tmp_path / "entry"
    entry_file.write_bytes(b64decode(entry["entries"][0]["entry"], "entry"))
    vkey_args = [a for v in log_vkeys for a in ("--vkey", v)]
    ok = cli("verify", "proof", str(cosigned_file), "--entry", str(entry_file), *vkey_args, "--witness", lw_vkey)
    assert ok.returncode == 0 and "witnessed by litewitness.example/w" in ok.stdout, ok.stderr
    plain = tmp_path / "plain.tlog-proof"
    plain.write_text(proof_text)
    refused = cli("verify", "proof", str(plain), "--entry", str(entry_file), *vkey_args, "--witness", lw_vkey)
    assert refused.returncode == 1 and "0 of the 1 witness cosignatures" in refused.stderr


def _port(proc: subprocess.Popen[bytes]) -> int:
    listen = proc.args[proc.args.index("-listen") + 1]  # type: ignore[union-attr,index]
    return int(str(listen).rsplit(":", 1)[1])


def test_serve_is_witnessed_by_litewitness_and_sealtrail_witness(litewitness: Path, agent: _Agent, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """sealtrail serve --witness-config with litewitness and sealtrail witness, quorum 2: the served
    checkpoint carries both cosignatures and ``sealtrail verify --witness ... --quorum 2`` passes."""
    data = tmp_path / "data"
    served = start_serve(data)
    try:
        auditor, gateway = create_key(served, "auditor"), served.tokens["gateway"]
        headers = {"Authorization": f"Bearer {auditor}"}
        asyncio.run(send_events(served.url, gateway, [serve_event(0)]))
        wait_for_checkpoint(served.url, auditor, TENANT, 1)
        origin = parse_checkpoint(parse_note(
            httpx.get(f"{served.url}/v1/logs/{TENANT}/checkpoint", headers=headers).text).text).origin
        keys = httpx.get(served.url + "/v1/keys", headers=headers).json()["keys"]
        checkpoint_vkey = next(k["vkey"] for k in keys if k["purpose"] == "checkpoint")
    finally:
        served.stop()
    db = tmp_path / "litewitness.db"
    for args in (["add-log", "-db", str(db), "-origin", origin],
                 ["add-key", "-db", str(db), "-origin", origin, "-key", checkpoint_vkey]):
        subprocess.run([str(litewitness / "witnessctl"), *args], capture_output=True, timeout=60, check=True)
    lw, lw_vkey, _ = _start_litewitness(litewitness, agent, db, tmp_path)
    key_file, sw_vkey = witness_key(tmp_path)
    sw_db = str(tmp_path / "witness.db")
    assert cli("witness", "log", "add", "--origin", origin, "--vkey", checkpoint_vkey, "--db", sw_db).returncode == 0
    sw = start_witness(key_file, sw_vkey, sw_db)
    config = tmp_path / "witnesses.toml"
    config.write_text(f'quorum = 2\n[[witness]]\nname = "litewitness"\nvkey = "{lw_vkey}"\n'
                      f'url = "http://127.0.0.1:{_port(lw)}"\n'
                      f'[[witness]]\nname = "sealtrail"\nvkey = "{sw_vkey}"\nurl = "{sw.url}"\n')
    monkeypatch.setenv("SEALTRAIL_WITNESS_CONFIG", str(config))
    served = start_serve(data)
    try:
        asyncio.run(send_events(served.url, gateway, [serve_event(i) for i in range(1, 60)]))
        deadline, note = time.monotonic() + 30, ""
        while time.monotonic() < deadline:
            note = httpx.get(f"{served.url}/v1/logs/{TENANT}/checkpoint", headers=headers).text
            if "\n60\n" in note and "— litewitness.example/w " in note and "— witness.example/w1 " in note:
                break
            time.sleep(0.1)
        assert "— litewitness.example/w " in note and "— witness.example/w1 " in note, note
        done = cli("verify", "--url", served.url, "--log", TENANT, "--token", auditor,
                   "--witness", lw_vkey, "--witness", sw_vkey, "--quorum", "2")
    finally:
        served.stop()
        sw.stop()
        lw.send_signal(signal.SIGINT)
        lw.wait(timeout=10)
    assert done.returncode == 0, done.stderr
    assert "litewitness.example/w" in done.stdout and "witness.example/w1" in done.stdout
