"""What machine and versions a benchmark ran on, for its report."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "absent"


def _postgres() -> str:
    from sealtrail.devstack.postgres import find_bindir

    bindir = find_bindir()
    if bindir is None:
        return "absent"
    out = subprocess.run([str(bindir / "postgres"), "--version"], capture_output=True, text=True, check=False)
    return out.stdout.strip()


def describe(*packages: str) -> dict[str, Any]:
    """nproc, CPU model, memory, Python, PostgreSQL, Kafka and the given packages' versions."""
    from sealtrail.devstack.kafka import KAFKA_VERSION

    mem_kib = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_kib = int(line.split()[1])
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": _cpu_model(),
        "memory_gib": round(mem_kib / 2**20, 1),
        "python": platform.python_version(),
        "postgresql": _postgres(),
        "kafka": KAFKA_VERSION,
        **{p: _version(p) for p in packages},
    }


def rss_mib(pid: int) -> float:
    """Resident set size of a process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    return 0.0
