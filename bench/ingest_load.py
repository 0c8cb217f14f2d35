"""The ingest benchmark's load generator, kept cheap because it shares the cores with ingest.

Request bodies are built once per connection and only get a new send counter written into their
event ids; requests go over a minimal keep-alive HTTP/1.1 client; 202 answers are counted by
their receipts and checked in full one in N; CPU is metered per process tree from ``/proc``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
from collections.abc import Callable
from pathlib import Path

import orjson

from sealtrail.core.note import Ed25519Verifier
from sealtrail.core.receipt import verify_receipt


class BodyTemplate:
    """One connection's request body of ``size`` events, with fresh event ids for every send.

    Event ids are UUIDv7-shaped ``TTTTTTTT-TTTT-7WWW-8III-CCCCCCCCCCCC``: the run's start time
    (T), the connection (W), the event's place in the body (I) and the send counter (C). The
    body is built once; a send only writes the 12 counter digits into each id, so every event
    id of the run is unique at the cost of one small copy per event instead of a new UUID.
    """

    def __init__(self, parts: list[tuple[bytes, bytes]], size: int, connection: int, start_ms: int) -> None:
        stamp = f"{start_ms & ((1 << 48) - 1):012x}"
        self._id_head = f"{stamp[:8]}-{stamp[8:]}-7{connection:03x}-"
        self._size = size
        self._counter = 0
        chunks, self._counter_at = [b'{"events":['], []
        at = len(chunks[0])
        for i in range(size):
            prefix, suffix = parts[(connection * size + i) % len(parts)]
            head = (b"," if i else b"") + prefix + f"{self._id_head}8{i:03x}-".encode()
            self._counter_at.append(at + len(head))
            chunks += [head, b"0" * 12, suffix]
            at += len(head) + 12 + len(suffix)
        chunks.append(b"]}")
        self.body = bytearray(b"".join(chunks))

    def next(self) -> int:
        """Write the next send counter into every event id of :attr:`body`; the counter."""
        self._counter += 1
        digits = b"%012x" % self._counter
        body = self.body
        for at in self._counter_at:
            body[at:at + 12] = digits
        return self._counter

    def event_ids(self, counter: int) -> list[str]:
        return [f"{self._id_head}8{i:03x}-{counter:012x}" for i in range(self._size)]


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


def process_cpu_s(pids: list[int]) -> dict[int, float]:
    """CPU seconds (user + system) of each of ``pids`` that is alive."""
    out = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[pid] = sum(int(f) for f in fields[11:13]) / os.sysconf("SC_CLK_TCK")
    return out


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


class Connection:
    """One keep-alive HTTP/1.1 connection that POSTs prebuilt bodies to ingest.

    A load generator on the same two cores takes CPU from the server it measures, so this skips
    an HTTP client library: it writes the request head and body and reads the answer by its
    Content-Length, and leaves parsing the JSON to the caller.
    """

    def __init__(self, host: str, port: int, token: str) -> None:
        self._host, self._port = host, port
        self._head = (f"POST /v1/events HTTP/1.1\r\nHost: {host}:{port}\r\n"
                      f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
                      "Content-Length: ").encode()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def post(self, body: bytes | bytearray) -> tuple[int, bytes]:
        """Send one request; the status and the answer's body."""
        if self._writer is None or self._reader is None:
            self._reader, self._writer = await asyncio.open_connection(self._host, self._port)
        reader, writer = self._reader, self._writer
        writer.write(self._head + b"%d\r\n\r\n" % len(body))
        writer.write(body)
        await writer.drain()
        head = (await reader.readuntil(b"\r\n\r\n")).lower()
        status = int(head[9:12])
        at = head.find(b"\r\ncontent-length:")
        if at < 0:
            raise SystemExit(f"ingest answered {status} without Content-Length: {head[:200]!r}")
        length = int(head[at + 17:head.index(b"\r\n", at + 2)])
        answer = await reader.readexactly(length)
        if b"\r\nconnection: close" in head:
            await self.close()
        return status, answer

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()
        self._reader = self._writer = None


class AnswerCheck:
    """Counts the events of a 202 answer cheaply, and checks one answer in ``every`` in full.

    The cheap count is the number of receipts in the answer. A full check parses the JSON and
    requires exactly the sent event ids, in order, under log ``bench``, no rejections, the same
    count as the cheap one, and a receipt (one per checked answer) that verifies against the
    service's key and names its event.
    """

    def __init__(self, verifier: Ed25519Verifier, every: int) -> None:
        self._verifiers = [verifier]
        self._every = every
        self._seen = 0
        self.checked = 0
        self.receipts_verified = 0

    def accepted(self, answer: bytes, sent_ids: Callable[[], list[str]]) -> int:
        count = answer.count(b'"receipt":')
        self._seen += 1
        if self._seen % self._every == 1 or self._every == 1:
            self._check(answer, count, sent_ids())
        return count

    def _check(self, answer: bytes, count: int, sent_ids: list[str]) -> None:
        parsed = orjson.loads(answer)
        accepted = parsed["accepted"]
        if parsed.get("rejected") or [a["event_id"] for a in accepted] != sent_ids or len(accepted) != count:
            raise SystemExit(f"a 202 answer does not match its request: {answer[:300]!r}")
        if any(a["log"] != "bench" for a in accepted):
            raise SystemExit("a 202 answer names another log than bench")
        pick = accepted[self.checked % len(accepted)]
        receipt = verify_receipt(pick["receipt"], self._verifiers)
        if (receipt.event_id, receipt.log) != (pick["event_id"], "bench"):
            raise SystemExit(f"a receipt promises {receipt} for {pick['event_id']}")
        self.checked += 1
        self.receipts_verified += 1
