"""The load generator of ``sealtrail bench`` (and of ``bench/``): cheap, because it shares the
machine with the server it measures.

Request bodies are built once per connection and only get a new send counter written into their
event ids; requests go over a minimal keep-alive HTTP/1.1 client; 202 answers are counted by
their receipts and checked in full one in N (event ids, log, one receipt verified).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import orjson

from sealtrail.core.note import Ed25519Verifier
from sealtrail.core.receipt import verify_receipt
from sealtrail.errors import BenchmarkError
from sealtrail.sdk.events import tool_call

SUBJECTS = 100
"""Distinct data subjects the synthetic events name, one each."""
_MARK = "00000000-0000-7000-8000-000000000000"
MAX_BATCH = 4096
"""Most events per body: the event's place in its body has 12 bits of the event id."""


def cpu_seconds(pid: int) -> float | None:
    """User plus system CPU seconds of a live process so far (from Linux's ``/proc``), else None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def event_templates(event_bytes: int) -> list[tuple[bytes, bytes]]:
    """Per subject, the JSON of one ~``event_bytes`` tool call split around its event id."""
    out = []
    for i in range(SUBJECTS):
        base = tool_call(agent_id="agent-7", session_id="sess-42", server_id="srv-crm",
                         tool_name="crm.search", tool_tier="read", decision="allow", status="ok",
                         latency_ms=87, event_id=_MARK,
                         payload={"args": {"query": ""}, "result": {"rows": 3}},
                         subjects=[f"user:customer-{i}@example.com"])
        pad = event_bytes - len(orjson.dumps(base))
        base["payload"] = {"args": {"query": "x" * max(0, pad)}, "result": {"rows": 3}}
        prefix, suffix = orjson.dumps(base).split(_MARK.encode())
        out.append((prefix, suffix))
    return out


class BodyTemplate:
    """One connection's request body of ``size`` events, with fresh event ids for every send.

    Event ids are UUIDv7-shaped ``TTTTTTTT-TTTT-7WWW-8III-CCCCCCCCCCCC``: the run's start time
    (T), the connection (W), the event's place in the body (I) and the send counter (C), which
    starts at ``first_counter``. The body is built once; a send only writes the 12 counter digits
    into each id, so every event id of the run is unique at the cost of one small copy per event.
    """

    def __init__(self, parts: list[tuple[bytes, bytes]], size: int, connection: int, start_ms: int,
                 *, first_counter: int = 0) -> None:
        if not 0 < size <= MAX_BATCH:
            raise BenchmarkError(f"a body holds 1 to {MAX_BATCH} events, not {size}")
        stamp = f"{start_ms & ((1 << 48) - 1):012x}"
        self._id_head = f"{stamp[:8]}-{stamp[8:]}-7{connection & 0xFFF:03x}-"
        self._size = size
        self._counter = first_counter
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
        self._counter = (self._counter + 1) & ((1 << 48) - 1)
        digits = b"%012x" % self._counter
        body = self.body
        for at in self._counter_at:
            body[at:at + 12] = digits
        return self._counter

    def event_ids(self, counter: int) -> list[str]:
        return [f"{self._id_head}8{i:03x}-{counter:012x}" for i in range(self._size)]


class Connection:
    """One keep-alive HTTP/1.1 connection that POSTs prebuilt bodies to ``/v1/events``.

    A load generator on the same cores takes CPU from the server it measures, so this skips an
    HTTP client library: it writes the request head and body and reads the answer by its
    Content-Length, and leaves parsing the JSON to the caller.
    """

    def __init__(self, host: str, port: int, token: str) -> None:
        self._host, self._port = host, port
        self._head = (f"POST /v1/events HTTP/1.1\r\nHost: {host}:{port}\r\n"
                      f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
                      "Content-Length: ").encode()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def post(self, body: bytes | bytearray) -> tuple[int, dict[str, str], bytes]:
        """Send one request; the status, the answer's headers (lowercase names) and its body."""
        if self._writer is None or self._reader is None:
            self._reader, self._writer = await asyncio.open_connection(self._host, self._port)
        reader, writer = self._reader, self._writer
        writer.write(self._head + b"%d\r\n\r\n" % len(body))
        writer.write(body)
        await writer.drain()
        lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(lines[0][9:12])
        headers = dict((k.strip().lower(), v.strip()) for k, _, v in (x.partition(":") for x in lines[1:] if x))
        if "content-length" not in headers:
            raise BenchmarkError(f"the server answered {status} without a Content-Length")
        answer = await reader.readexactly(int(headers["content-length"]))
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return status, headers, answer

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()
        self._reader = self._writer = None


class AnswerCheck:
    """Counts the events of a 202 answer cheaply, and checks one answer in ``every`` in full.

    The cheap count is the number of receipts in the answer. A full check parses the JSON and
    requires exactly the sent event ids, in order, all in one log, no rejections, the same count
    as the cheap one, and a receipt (one per checked answer) that verifies against the service's
    receipt keys and names its event. :attr:`log` is the log the first checked answer names.
    """

    def __init__(self, verifiers: list[Ed25519Verifier], every: int, *, log: str | None = None) -> None:
        self._verifiers = verifiers
        self._every = every
        self._seen = 0
        self.log = log
        self.checked = 0

    def accepted(self, answer: bytes, sent_ids: list[str]) -> int:
        """The number of events the 202 ``answer`` accepted (checked in full one time in ``every``)."""
        count = answer.count(b'"receipt":')
        self._seen += 1
        if self._seen % self._every == 1 or self._every == 1:
            self._check(answer, count, sent_ids)
        return count

    def _check(self, answer: bytes, count: int, sent_ids: list[str]) -> None:
        parsed = orjson.loads(answer)
        accepted = parsed["accepted"]
        if parsed.get("rejected") or [a["event_id"] for a in accepted] != sent_ids or len(accepted) != count:
            raise BenchmarkError("a 202 answer does not accept exactly the events of its request")
        logs = {a["log"] for a in accepted}
        self.log = self.log or next(iter(logs))
        if logs != {self.log}:
            raise BenchmarkError(f"a 202 answer names logs {sorted(logs)}, not only {self.log}")
        pick = accepted[self.checked % len(accepted)]
        receipt = verify_receipt(pick["receipt"], self._verifiers)
        if (receipt.event_id, receipt.log) != (pick["event_id"], self.log):
            raise BenchmarkError(f"a receipt names {receipt.event_id} in {receipt.log}, not {pick['event_id']}")
        self.checked += 1


@dataclass(frozen=True)
class Load:
    """What to send: ``connections`` keep-alive connections, bodies of ``batch`` events of about
    ``event_bytes``, for ``seconds``; at ``rate`` events/s on a fixed schedule, or (0) each
    connection sending its next body as soon as the last is answered."""

    url: str
    token: str
    seconds: float
    connections: int = 2
    batch: int = 500
    event_bytes: int = 1024
    rate: float = 0.0


@dataclass
class Sent:
    """What a run sent and what came back: the time and event ids of every 202, status counts."""

    accepted: list[tuple[float, list[str]]] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    seconds: float = 0.0
    request_s: list[float] = field(default_factory=list)
    """The time of each request from its send to its whole answer, in the order answered."""

    @property
    def accepted_events(self) -> int:
        return sum(len(ids) for _, ids in self.accepted)


async def send(load: Load, check: AnswerCheck) -> Sent:
    """Run ``load``. A 429 or 503 waits Retry-After (at most 5 s); any other answer but 202 fails
    the run with :class:`~sealtrail.errors.BenchmarkError`, as does a 202 for part of a batch."""
    target = urlsplit(load.url)
    if target.scheme != "http" or not target.hostname:
        raise BenchmarkError(f"the load goes to an http:// URL, not {load.url!r}")
    host, port = target.hostname, target.port or 80
    parts = event_templates(load.event_bytes)
    sent = Sent()
    start = time.perf_counter()
    end = start + load.seconds
    start_ms, first = int(time.time() * 1000), secrets.randbits(40)
    interval = load.batch / load.rate if load.rate > 0 else 0.0
    slots = max(1, round(load.seconds / interval)) if interval else 0  # batches on the schedule, in all
    next_slot = [0]

    async def worker(n: int) -> None:
        body = BodyTemplate(parts, load.batch, n, start_ms, first_counter=first)
        conn = Connection(host, port, load.token)
        try:
            while True:
                if interval:
                    slot, next_slot[0] = next_slot[0], next_slot[0] + 1
                    if slot >= slots:
                        return
                    await asyncio.sleep(max(0.0, start + slot * interval - time.perf_counter()))
                elif time.perf_counter() >= end:
                    return
                counter = body.next()
                posted = time.perf_counter()
                status, headers, answer = await conn.post(body.body)
                sent.request_s.append(time.perf_counter() - posted)
                sent.statuses[status] = sent.statuses.get(status, 0) + 1
                if status == 202:
                    ids = body.event_ids(counter)
                    if check.accepted(answer, ids) != len(ids):
                        raise BenchmarkError("a 202 answer did not accept the whole batch")
                    sent.accepted.append((time.perf_counter(), ids))
                elif status in (429, 503):
                    await asyncio.sleep(min(5.0, float(headers.get("retry-after", "1") or 1)))
                else:
                    raise BenchmarkError(f"ingest answered {status}: {answer[:300].decode(errors='replace')}")
        finally:
            await conn.close()

    await asyncio.gather(*(worker(n) for n in range(load.connections)))
    sent.seconds = time.perf_counter() - start
    return sent
