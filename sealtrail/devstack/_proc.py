"""Small process and network helpers shared by the local servers."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from sealtrail.errors import ServiceStartError


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def pid_alive(pid: int) -> bool:
    """True when a process with this pid exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def stop_pid(pid: int, *, timeout: float = 30.0) -> None:
    """SIGTERM, wait up to ``timeout`` seconds, then SIGKILL."""
    if not pid_alive(pid):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(pid)
        if not pid_alive(pid):
            return
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    for _ in range(50):
        _reap(pid)
        if not pid_alive(pid):
            return
        time.sleep(0.1)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def run(cmd: Sequence[str], *, what: str, env: dict[str, str] | None = None, timeout: float = 600) -> str:
    """Run a command to completion; raise ServiceStartError naming ``what`` and its output on failure."""
    try:
        done = subprocess.run(
            list(cmd), capture_output=True, text=True, env=env, timeout=timeout, check=False
        )
    except FileNotFoundError as e:
        raise ServiceStartError(f"{what}: {cmd[0]} not found") from e
    except subprocess.TimeoutExpired as e:
        raise ServiceStartError(f"{what}: timed out after {timeout:.0f}s") from e
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-15:]
        raise ServiceStartError(f"{what} failed (exit {done.returncode}):\n" + "\n".join(tail))
    return done.stdout


def apt_install(packages: Sequence[str], *, why: str) -> None:
    """Install Debian packages when running as root; otherwise explain what to install."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise ServiceStartError(
            f"{why}. Install it first, e.g. `sudo apt-get install {' '.join(packages)}`."
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run(["apt-get", "update", "-q"], what="apt-get update", env=env)
    run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages],
        what=f"apt-get install {' '.join(packages)}", env=env)


def tail_file(path: Path, lines: int = 20) -> str:
    """The last lines of a log file, for error messages."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
