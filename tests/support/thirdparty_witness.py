"""Witnesses that are not Sealtrail, built from the Go module proxy at pinned versions and cached.

- litewitness and witnessctl from filippo.io/torchwood (pinned by tests/interop/litewitness/go.mod
  and go.sum), built once into ``~/.cache/sealtrail/litewitness-<version>/``. Its key lives in an
  ssh-agent; its logs are registered with ``witnessctl add-log`` and ``add-key``.
- omniwitness from github.com/transparency-dev/witness (pinned by tests/interop/omniwitness/go.mod
  and go.sum), built once into ``~/.cache/sealtrail/omniwitness-<version>/``. Its key is a
  ``PRIVATE+KEY+...`` file (the same format as ``sealtrail witness key generate`` writes); a log
  that is not in its built-in list is added with ``--additional_logs`` (a YAML file of ``Logs:``
  with ``Origin`` and ``PublicKey``); its state is a SQLite file (modernc.org/sqlite, no cgo).

Both are pure Go: ``CGO_ENABLED=0`` with the machine's Go toolchain (``GOTOOLCHAIN=local``).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from sealtrail.core.checkpoint import parse_checkpoint
from sealtrail.core.cosignature import CosignatureVerifier
from sealtrail.core.note import parse_note
from sealtrail.core.quorum import WitnessPolicy
from sealtrail.devstack._proc import apt_install
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
from tests.support.witness import WitnessProcess, start_witness, witness_key

INTEROP = Path(__file__).resolve().parents[1] / "interop"
GO_ENV = {"GOTOOLCHAIN": "local", "GOFLAGS": "-mod=readonly", "CGO_ENABLED": "0"}
CACHE_ROOT = Path.home() / ".cache" / "sealtrail"
LITEWITNESS_VERSION = "v0.6.1"
OMNIWITNESS_VERSION = "v0.0.0-20260720115447-2e1c6971d19e"
LITEWITNESS_NAME = "litewitness.example/w"
OMNIWITNESS_NAME = "omniwitness.example/w"


class BuildError(RuntimeError):
    """A pinned Go program did not build; the message carries the go command's output."""


def go() -> str:
    found = shutil.which("go")
    if found is None:
        raise BuildError("the Go toolchain is needed to build tests/interop programs and is not on PATH")
    return found


def build_cached(module_dir: str, version: str, packages: dict[str, str]) -> Path:
    """Build ``packages`` (binary name -> import path) of tests/interop/<module_dir> once into the cache."""
    cache = CACHE_ROOT / f"{module_dir}-{version}"
    if all((cache / name).exists() for name in packages):
        return cache
    cache.mkdir(parents=True, exist_ok=True)
    tmp = cache / f".build-{os.getpid()}"
    tmp.mkdir(exist_ok=True)
    done = subprocess.run([go(), "build", "-o", str(tmp) + "/", *packages.values()], cwd=INTEROP / module_dir,
                          env={**os.environ, **GO_ENV}, capture_output=True, text=True, timeout=1800, check=False)
    if done.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise BuildError(f"building {module_dir} {version} failed:\n{done.stderr[-3000:]}")
    for name in packages:
        os.replace(tmp / name, cache / name)  # atomic: a parallel run sees a whole binary or none
    shutil.rmtree(tmp, ignore_errors=True)
    return cache


def litewitness_binaries() -> Path:
    return build_cached("litewitness", LITEWITNESS_VERSION, {
        "litewitness": "filippo.io/torchwood/cmd/litewitness", "witnessctl": "filippo.io/torchwood/cmd/witnessctl"})


def omniwitness_binary() -> Path:
    cache = build_cached("omniwitness", OMNIWITNESS_VERSION,
                         {"omniwitness": "github.com/transparency-dev/witness/cmd/omniwitness"})
    return cache / "omniwitness"


@dataclass
class ThirdPartyWitness:
    """One running witness that is not Sealtrail."""

    name: str
    vkey: str
    port: int
    proc: subprocess.Popen[bytes]
    err: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def verifier(self) -> CosignatureVerifier:
        return CosignatureVerifier.from_vkey(self.vkey)

    def stop(self, timeout: float = 10) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout=timeout)


def witness_table(label: str, vkey: str, url: str) -> str:
    """One ``[[witness]]`` table of a Sealtrail witness configuration."""
    return f'[[witness]]\nname = "{label}"\nvkey = "{vkey}"\nurl = "{url}"\n'


def _wait_listening(proc: subprocess.Popen[bytes], port: int, err: Path, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    proc.kill()
    proc.wait(timeout=10)
    raise RuntimeError(f"{what} did not start: {err.read_text()[-2000:]}")


class SshAgent:
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
                self.proc.kill()
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


def register_with_litewitness(bin_dir: Path, db: Path, origin: str, vkey: str) -> None:
    """``witnessctl add-log`` and ``add-key``: litewitness then witnesses ``origin`` signed by ``vkey``."""
    for args in (["add-log", "-db", str(db), "-origin", origin],
                 ["add-key", "-db", str(db), "-origin", origin, "-key", vkey]):
        done = subprocess.run([str(bin_dir / "witnessctl"), *args], capture_output=True, text=True, timeout=60,
                              check=False)
        if done.returncode != 0:
            raise RuntimeError(f"witnessctl {args[0]} failed: {done.stderr[-2000:]}")


def start_litewitness(bin_dir: Path, agent: SshAgent, db: Path, tmp: Path) -> ThirdPartyWitness:
    """litewitness on a free port; its vkey is read from its first log line."""
    port = free_port()
    err = tmp / f"litewitness-{port}.err"
    with open(err, "wb") as e:
        proc = subprocess.Popen([str(bin_dir / "litewitness"), "-db", str(db), "-name", LITEWITNESS_NAME,
                                 "-key", agent.fingerprint, "-ssh-agent", str(agent.sock),
                                 "-listen", f"127.0.0.1:{port}"], stdout=e, stderr=e)
    _wait_listening(proc, port, err, "litewitness")
    match = re.search(r"vkey=(\S+)", err.read_text())
    if match is None:
        proc.kill()
        raise RuntimeError(f"litewitness did not log its vkey: {err.read_text()[-2000:]}")
    return ThirdPartyWitness(LITEWITNESS_NAME, match.group(1).strip('"'), port, proc, err)


def omniwitness_logs_yaml(path: Path, logs: dict[str, str]) -> Path:
    """The ``--additional_logs`` file: origin -> the log's checkpoint vkey (Ed25519, type 0x01)."""
    lines = ["Logs:"]
    for origin, vkey in logs.items():
        lines += [f'  - Origin: "{origin}"', f'    PublicKey: "{vkey}"']
    path.write_text("\n".join(lines) + "\n")
    return path


def start_omniwitness(binary: Path, key_file: Path, vkey: str, db: Path, logs_yaml: Path,
                      tmp: Path) -> ThirdPartyWitness:
    """omniwitness on a free port with Sealtrail's logs added to its built-in list; no metrics port,
    no distributor, no bastion, no public config polling: it makes no outbound connection."""
    port = free_port()
    err = tmp / f"omniwitness-{port}.err"
    with open(err, "wb") as e:
        proc = subprocess.Popen([str(binary), "-listen", f"127.0.0.1:{port}", "-metrics_listen", "",
                                 "-db_file", str(db), "-private_key_path", str(key_file),
                                 "-additional_logs", str(logs_yaml), "-logtostderr"], stdout=e, stderr=e)
    _wait_listening(proc, port, err, "omniwitness")
    name = vkey.split("+", 1)[0]
    return ThirdPartyWitness(name, vkey, port, proc, err)


def three_witnesses(litewitness: Path, omniwitness: Path, agent: SshAgent, tmp: Path, origin: str,
                    checkpoint_vkey: str) -> dict[str, ThirdPartyWitness | WitnessProcess]:
    """litewitness, omniwitness and sealtrail witness, each told the log's origin and checkpoint vkey."""
    lw_db = tmp / "litewitness.db"
    register_with_litewitness(litewitness, lw_db, origin, checkpoint_vkey)
    started: dict[str, ThirdPartyWitness | WitnessProcess] = {}
    try:
        started["litewitness"] = start_litewitness(litewitness, agent, lw_db, tmp)
        ow_key, ow_vkey = witness_key(tmp, OMNIWITNESS_NAME)
        logs = omniwitness_logs_yaml(tmp / "omniwitness-logs.yaml", {origin: checkpoint_vkey})
        started["omniwitness"] = start_omniwitness(omniwitness, ow_key, ow_vkey, tmp / "omniwitness.db", logs, tmp)
        sw_key, sw_vkey = witness_key(tmp)
        sw_db = str(tmp / "witness.db")
        added = cli("witness", "log", "add", "--origin", origin, "--vkey", checkpoint_vkey, "--db", sw_db)
        assert added.returncode == 0, added.stderr
        started["sealtrail"] = start_witness(sw_key, sw_vkey, sw_db)
    except BaseException:
        for w in started.values():
            w.stop()
        raise
    return started


def cosigned_by_all(url: str, headers: dict[str, str], policy: WitnessPolicy, size: int,
                     timeout: float = 30) -> str:
    """The latest checkpoint of the served log once it covers ``size`` and every witness of ``policy`` cosigned it."""
    deadline, note = time.monotonic() + timeout, ""
    while time.monotonic() < deadline:
        note = httpx.get(f"{url}/v1/logs/{TENANT}/checkpoint", headers=headers).text
        if int(note.splitlines()[1]) >= size and len(policy.cosigners(note).names) == len(policy.witnesses):
            return note
        time.sleep(0.1)
    raise AssertionError(f"no checkpoint of {size} entries cosigned by every witness in {timeout} s:\n{note}")


@dataclass(frozen=True)
class SignedLog:
    """A served data directory whose log has signed its first checkpoint, as witnesses must know it."""

    auditor: str
    gateway: str
    origin: str
    checkpoint_vkey: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.auditor}"}


def sign_first_checkpoint(data: Path) -> SignedLog:
    """Serve ``data`` until its log signs a checkpoint of one entry, then stop; the log's origin and key."""
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
    return SignedLog(auditor, gateway, origin, checkpoint_vkey)
