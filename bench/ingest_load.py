"""CPU metering for the benchmarks, per process tree from ``/proc``. The load generator itself is
:mod:`sealtrail.cli.benchload`, shared with ``sealtrail bench``."""

from __future__ import annotations

import os
import resource
from pathlib import Path

from sealtrail.cli.benchload import cpu_seconds


def tree_cpu_s(root: int) -> float:
    """CPU seconds (user + system) of a process and its descendants, with their reaped children."""
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(stat.parent.name)
        parents[pid] = int(fields[1])  # field 4 of stat: parent pid
        ticks[pid] = sum(int(f) for f in fields[11:15])  # fields 14-17: utime, stime, cutime, cstime
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in tree]
        tree.update(children)
        frontier += children
    return sum(ticks.get(pid, 0) for pid in tree) / os.sysconf("SC_CLK_TCK")


def live_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of a process that must still run."""
    cpu = cpu_seconds(pid)
    if cpu is None:
        raise SystemExit(f"process {pid} is gone")
    return cpu


def process_cpu_s(pids: list[int]) -> dict[int, float]:
    """CPU seconds (user + system) of each of ``pids`` that is alive."""
    return {pid: cpu for pid in pids if (cpu := cpu_seconds(pid)) is not None}


def machine_busy_s() -> float:
    """CPU seconds the whole machine spent busy (not idle, not waiting for I/O) since boot."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class CpuMeter:
    """CPU seconds per named process tree, this driver and the whole machine, over a window."""

    def __init__(self, trees: dict[str, int]) -> None:
        self._trees = trees
        self._start: dict[str, float] = {}

    def _now(self) -> dict[str, float]:
        out = {name: tree_cpu_s(pid) for name, pid in self._trees.items()}
        out["driver"] = own_cpu_s()
        out["machine_busy"] = machine_busy_s()
        return out

    def start(self) -> None:
        self._start = self._now()

    def stop(self) -> dict[str, float]:
        end = self._now()
        used = {name: end[name] - self._start[name] for name in end}
        used["other"] = used["machine_busy"] - sum(v for k, v in used.items() if k != "machine_busy")
        return {name: round(v, 2) for name, v in used.items()}
