"""The four Sealtrail services as background processes over the local PostgreSQL and Kafka.

``deploy/local/up --all`` starts ``sealtrail ledger``, ``ingest``, ``query`` and ``projector`` (in
that order: the ledger applies the migrations and creates the topics and its signing keys) each in
its own session, with its output in ``<state>/logs/<service>.log``, its working directory the
state directory, and only the secrets it needs in its environment. Ports are chosen free at the
first start and kept with the pids in ``stack.json``; a service found running is left alone.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sealtrail.devstack._proc import free_port, pid_alive, tail_file
from sealtrail.devstack.secrets import Secrets
from sealtrail.errors import ServiceStartError

SERVICES = ("ledger", "ingest", "query", "projector")
READY_WITHIN_S = 180.0
STOP_WITHIN_S = 30.0
# What no service inherits from the shell that runs ``up``: each gets only its own secrets.
_PRIVATE = ("SEALTRAIL_KEK", "SEALTRAIL_KEK_FILE", "SEALTRAIL_SERVICE_KEY_FILE", "SEALTRAIL_SIGNING_KEY_DIR")


@dataclass(slots=True)
class ServiceProcess:
    """One service: its name, port and the pid it was last started with (0: never)."""

    name: str
    port: int
    pid: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def running(self) -> bool:
        """True while the recorded pid is alive and is still this service (not a reused pid)."""
        if not self.pid or not pid_alive(self.pid):
            return False
        try:
            argv = Path(f"/proc/{self.pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return False
        return b"sealtrail.cli.main" in argv and self.name.encode() in argv

    def ready(self, timeout: float = 1.0) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/readyz", timeout=timeout) as answer:
                return int(answer.status) == 200
        except (urllib.error.URLError, OSError, ValueError):
            return False


def load(state: Mapping[str, object]) -> list[ServiceProcess]:
    """The services recorded in ``state`` (ports kept, new free ones for the others), in start order."""
    recorded = state.get("services")
    known = recorded if isinstance(recorded, dict) else {}
    out = []
    for name in SERVICES:
        entry = known.get(name)
        entry = entry if isinstance(entry, dict) else {}
        out.append(ServiceProcess(name, int(entry.get("port") or free_port()), int(entry.get("pid") or 0)))
    return out


def dump(services: list[ServiceProcess]) -> dict[str, dict[str, int]]:
    return {s.name: {"port": s.port, "pid": s.pid} for s in services}


def environment(name: str, *, db_url: str, bootstrap: str, secrets: Secrets) -> dict[str, str]:
    """The environment ``name`` runs with: the shell's, minus every secret, plus its own."""
    env = {k: v for k, v in os.environ.items() if k not in _PRIVATE}
    env |= {"SEALTRAIL_DATABASE_URL": db_url, "SEALTRAIL_KAFKA_BOOTSTRAP": bootstrap}
    if name == "ledger":
        env["SEALTRAIL_SIGNING_KEY_DIR"] = str(secrets.ledger_keys)
    elif name in ("ingest", "query"):
        env["SEALTRAIL_KEK_FILE"] = str(secrets.kek)
        env["SEALTRAIL_SERVICE_KEY_FILE"] = str(secrets.ingest_key if name == "ingest" else secrets.query_key)
    return env


def start(svc: ServiceProcess, *, state_dir: Path, env: dict[str, str]) -> None:
    """Start ``svc`` in the background in its own session; record its pid."""
    logs = state_dir / "logs"
    logs.mkdir(mode=0o700, exist_ok=True)
    with open(logs / f"{svc.name}.log", "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sealtrail.cli.main", svc.name, "--port", str(svc.port)],
            cwd=state_dir, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)
    svc.pid = proc.pid


def wait_ready(svc: ServiceProcess, *, state_dir: Path, within_s: float = READY_WITHIN_S) -> None:
    """Return once ``svc`` answers 200 on /readyz; ServiceStartError with its log's tail if it exits
    or is not ready within ``within_s``."""
    log = state_dir / "logs" / f"{svc.name}.log"
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if svc.ready():
            return
        if not svc.running():
            raise ServiceStartError(f"sealtrail {svc.name} exited; the end of {log}:\n{tail_file(log)}")
        time.sleep(0.3)
    raise ServiceStartError(f"sealtrail {svc.name} not ready on {svc.url}/readyz within {within_s:.0f} s; "
                            f"the end of {log}:\n{tail_file(log)}")


def stop(svc: ServiceProcess, *, within_s: float = STOP_WITHIN_S) -> None:
    """SIGTERM the service's process group, wait up to ``within_s``, then SIGKILL it."""
    if not svc.running():
        svc.pid = 0
        return
    _signal_group(svc.pid, signal.SIGTERM)
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline and _group_alive(svc.pid):
        _reap(svc.pid)
        time.sleep(0.1)
    if _group_alive(svc.pid):
        _signal_group(svc.pid, signal.SIGKILL)
        for _ in range(100):
            _reap(svc.pid)
            if not _group_alive(svc.pid):
                break
            time.sleep(0.1)
    svc.pid = 0


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _group_alive(pgid: int) -> bool:
    """True while any live (non-zombie) process is in process group ``pgid``."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] != "Z":
            return True
    return False


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
