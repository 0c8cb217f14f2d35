"""The gateway's async client: batching, retries with the same event ids, an on-disk spool.

Delivery contract:

- Events are sent in batches of up to ``batch_max``, at least every ``flush_interval_s``.
- A batch that meets 429, 503, another 5xx, a timeout or a connection error is retried with the
  SAME events (so the same event ids) after :class:`~sealtrail.sdk.backoff.Backoff` delays that
  honour Retry-After. Ingest accepts a resent event again and the ledger keeps it once.
- After ``attempts`` tries the batch goes to the spool (when ``spool_dir`` is set) and, until the
  spool is drained, newer batches follow it there, keeping their order; the spool is retried with
  growing delays and drained oldest first. Without a spool, undelivered events stay queued in
  memory and :meth:`SealtrailClient.send` waits while ``queue_max`` events are queued.
- 401 and 403 are retried like outages (a key being fixed must not lose events), but each batch
  that runs out of tries on one is logged as a warning (logger ``sealtrail.sdk``) naming the status
  and the problem's title and detail, so a wrong or revoked key shows at once. 413 splits the
  batch. 400 and 422 are final: the events are reported through ``on_rejected``.
- :meth:`SealtrailClient.close` (and leaving ``async with``) flushes; events it cannot deliver
  or spool raise :class:`DeliveryError`, which names the last answer (HTTP status, problem title
  and detail, or the connection error). Events queued in memory are lost if the process dies;
  spooled ones are not. ``stats.last_status`` and ``stats.last_problem`` hold the last answer too.
- :meth:`SealtrailClient.send_durable` (needs the spool) returns only once its events are in the
  spool, fsync'd: they survive a crash of the process from then on and are delivered from the spool.
  Events of callers that arrive while one write is under way are written together by the next one
  (group commit: one fsync serves all of them). While the spool's write and fdatasync take under
  ``INLINE_SYNC_S`` on average, the write runs in the event loop's thread (a hop to a worker thread
  costs more CPU than a fast disk's fdatasync); on a slower disk it runs in a worker thread, so the
  loop keeps serving while the disk works.
- No message, log line or exception of this module holds the token.

This module imports only httpx and orjson (and the standard library).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson

from sealtrail.sdk.backoff import Backoff, parse_retry_after
from sealtrail.sdk.spool import Spool, SpooledBatch

DEFAULT_BATCH_MAX = 500
DEFAULT_FLUSH_INTERVAL_S = 1.0
DEFAULT_SPOOL_MAX_BYTES = 256 * 1024 * 1024
DEFAULT_ATTEMPTS = 4
DEFAULT_TIMEOUT_S = 15.0
INLINE_SYNC_S = 0.001
"""Below this average fdatasync time the spool is written in the event loop's thread."""
_RETRYABLE = frozenset({401, 403, 408, 425, 429, 500, 502, 503, 504})
_KEY_REFUSED = frozenset({401, 403})
_TOKEN = re.compile(r"\bst_([0-9a-f]{16})_[A-Za-z0-9_-]+")
log = logging.getLogger("sealtrail.sdk")


class DeliveryError(Exception):
    """Events could be neither delivered nor spooled; ``status``, ``title`` and ``detail`` describe
    the last answer (``status`` None after a connection error or timeout)."""

    def __init__(self, message: str, *, status: int | None = None, title: str = "", detail: str = "") -> None:
        super().__init__(message)
        self.status, self.title, self.detail = status, title, detail


@dataclass(frozen=True, slots=True)
class Failure:
    """Why the last try of a batch failed: an HTTP answer, or a connection error (``status`` None)."""

    status: int | None
    title: str
    detail: str = ""

    @classmethod
    def from_response(cls, resp: httpx.Response) -> Failure:
        problem: dict[str, Any] = {}
        if resp.headers.get("content-type", "").endswith("json"):
            with contextlib.suppress(ValueError):
                body = resp.json()
                problem = body if isinstance(body, dict) else {}
        title = _TOKEN.sub(r"st_\1_…", str(problem.get("title") or resp.reason_phrase))
        return cls(resp.status_code, title, _TOKEN.sub(r"st_\1_…", str(problem.get("detail") or "")))

    def __str__(self) -> str:
        text = self.title if self.status is None else f"HTTP {self.status} {self.title}"
        text += f": {self.detail}" if self.detail else ""
        if self.status in _KEY_REFUSED:
            text += " (ingest refused the API key: it is wrong, revoked, expired or not a gateway key)"
        return text


@dataclass(frozen=True, slots=True)
class Accepted:
    event_id: str
    log: str
    receipt: str


@dataclass(frozen=True, slots=True)
class Rejected:
    event_id: str | None
    type: str
    title: str
    detail: str
    pointer: str


@dataclass
class ClientStats:
    accepted: int = 0
    rejected: int = 0
    retries: int = 0
    spooled_batches: int = 0
    last_status: int | None = None
    last_problem: str | None = None
    """The last failed answer, as :class:`Failure` words it (None until a try fails)."""


@dataclass(frozen=True, slots=True)
class _Answer:
    done: bool
    retry_after: float | None = None
    split: bool = False


class SealtrailClient:
    """Sends events to ingest's ``POST /v1/events`` on behalf of one gateway API key."""

    def __init__(
        self, url: str, token: str, *, batch_max: int = DEFAULT_BATCH_MAX,
        flush_interval_s: float = DEFAULT_FLUSH_INTERVAL_S, spool_dir: Path | str | None = None,
        spool_max_bytes: int = DEFAULT_SPOOL_MAX_BYTES, queue_max: int | None = None,
        attempts: int = DEFAULT_ATTEMPTS, backoff: Backoff | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        on_accepted: Callable[[list[Accepted]], None] | None = None,
        on_rejected: Callable[[list[Rejected]], None] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._batch_max = batch_max
        self._interval = flush_interval_s
        self._queue_max = queue_max or 20 * batch_max
        self._attempts = max(1, attempts)
        self._backoff = backoff or Backoff()
        self._on_accepted = on_accepted
        self._on_rejected = on_rejected
        self._http = httpx.AsyncClient(
            base_url=url.rstrip("/"), timeout=timeout_s, transport=transport,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        self._spool = Spool(Path(spool_dir), max_bytes=spool_max_bytes) if spool_dir is not None else None
        self._queue: deque[dict[str, Any]] = deque()
        self._wake = asyncio.Event()
        self._space = asyncio.Event()
        self._space.set()
        self._pump_lock = asyncio.Lock()
        self._spool_io = asyncio.Lock()
        """Serialises the spool's file operations, which run in threads."""
        self._commit: list[dict[str, Any]] = []
        self._commit_waiters: list[asyncio.Future[None]] = []
        self._committer: asyncio.Task[None] | None = None
        self._uncommitted_since_wake = 0
        self._task: asyncio.Task[None] | None = None
        self._outages = 0
        self._next_spool_try = 0.0
        self._last_retry_after: float | None = None
        self._last_failure: Failure | None = None
        self.stats = ClientStats()

    def __repr__(self) -> str:  # the token stays out of reprs and tracebacks
        return f"SealtrailClient(url={str(self._http.base_url)!r})"

    async def __aenter__(self) -> SealtrailClient:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="sealtrail-sdk-flusher")

    @property
    def pending(self) -> int:
        """Events queued in memory (not counting the spool)."""
        return len(self._queue)

    @property
    def spooled(self) -> bool:
        return bool(self._spool)

    @property
    def outage(self) -> bool:
        """True from a failed delivery until the spool has been drained again."""
        return self._outages > 0

    async def send_durable(self, events: list[dict[str, Any]]) -> None:
        """Write ``events`` to the spool and return once they are on disk (fsync'd); the flusher
        delivers them from there. Concurrent callers share one write (group commit). Raises
        ``SpoolFullError`` (or the ``OSError`` of the write) when they could not be written."""
        if self._spool is None:
            raise ValueError("send_durable needs a spool (spool_dir)")
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._commit.extend(events)
        self._commit_waiters.append(done)
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._commit_loop(), name="sealtrail-sdk-commit")
        await asyncio.shield(done)

    async def _commit_loop(self) -> None:
        assert self._spool is not None
        while self._commit:
            group, waiters = self._commit, self._commit_waiters
            self._commit, self._commit_waiters = [], []
            try:
                async with self._spool_io:
                    if self._spool.sync_s < INLINE_SYNC_S:
                        self._spool.append(group)
                    else:
                        await asyncio.to_thread(self._spool.append, group)
            except Exception as e:
                for w in waiters:
                    if not w.done():
                        w.set_exception(e)
                continue
            for w in waiters:
                if not w.done():
                    w.set_result(None)
            self._uncommitted_since_wake += len(group)
            if self._uncommitted_since_wake >= self._batch_max:
                self._uncommitted_since_wake = 0
                self._wake.set()

    async def send(self, event: dict[str, Any]) -> None:
        """Queue one event (waits while ``queue_max`` events are queued)."""
        while len(self._queue) >= self._queue_max:
            self._space.clear()
            self._wake.set()
            await self._space.wait()
        self._queue.append(event)
        if len(self._queue) >= self._batch_max:
            self._wake.set()

    async def flush(self) -> None:
        """Deliver (or spool) everything queued now, and try the spool once."""
        await self._pump(force_spool=True)

    async def close(self) -> None:
        """Flush, stop the background task and release the connection and the spool."""
        try:
            if self._committer is not None:
                await asyncio.gather(self._committer, return_exceptions=True)
            await self.flush()
        finally:
            if self._task is not None:
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
                self._task = None
            await self._http.aclose()
            if self._spool is not None:
                self._spool.close()
        if self._queue:
            failure = self._last_failure
            message = f"{len(self._queue)} events were neither delivered nor spooled"
            if failure is None:
                raise DeliveryError(message)
            raise DeliveryError(f"{message}; last answer: {failure}", status=failure.status,
                                title=failure.title, detail=failure.detail)

    async def _run(self) -> None:
        while True:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation that
            # races with the wake-up, and close() would then wait for this task forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await self._wake.wait()
            self._wake.clear()
            await self._pump(force_spool=False)

    async def _pump(self, *, force_spool: bool) -> None:
        async with self._pump_lock:
            if self._spool and (force_spool or time.monotonic() >= self._next_spool_try):
                await self._drain_spool()
            while self._queue:
                batch = [self._queue.popleft() for _ in range(min(self._batch_max, len(self._queue)))]
                self._space.set()
                if self._spool:  # an outage is on: keep order behind the spooled batches
                    await self._to_spool(batch)
                    continue
                rest = await self._deliver(batch, self._attempts)
                if rest and self._spool is not None:
                    self._outage(None)
                    await self._to_spool(rest)
                elif rest:
                    self._queue.extendleft(reversed(rest))
                    break

    async def _drain_spool(self) -> None:
        """Deliver what the spool holds now, oldest first. Events spooled meanwhile wait for the next
        round (the next wake-up), so that a steady stream of durable events goes out in batches of
        half a second (or ``batch_max`` events) instead of one small post after another."""
        assert self._spool is not None
        until = self._spool.mark()
        while True:
            async with self._spool_io:
                batch = await asyncio.to_thread(functools.partial(self._spool.peek, self._batch_max, until=until))
            if batch is None:
                break
            if await self._deliver_spooled(batch):
                self._outage(self._last_retry_after)
                return
            async with self._spool_io:
                await asyncio.to_thread(self._spool.ack, batch)
        self._outages = 0

    async def _deliver_spooled(self, batch: SpooledBatch) -> bool:
        """Send a spooled batch as its stored bytes (one try); True while some of it is undelivered."""
        self._last_retry_after = None
        answer = await self._post(batch.body, lambda: batch.events)
        if answer.split and batch.count > 1:
            events = batch.events
            half = len(events) // 2
            return bool(await self._deliver(events[:half], 1) + await self._deliver(events[half:], 1))
        if not answer.done:
            self._last_retry_after = answer.retry_after
            self._warn_refused(batch.count, 1)
            return True
        return False

    async def _to_spool(self, batch: list[dict[str, Any]]) -> None:
        assert self._spool is not None
        async with self._spool_io:
            await asyncio.to_thread(self._spool.append, batch)  # SpoolFullError propagates
        self.stats.spooled_batches += 1

    def _outage(self, retry_after: float | None) -> None:
        self._next_spool_try = time.monotonic() + self._backoff.delay(self._outages, retry_after=retry_after)
        self._outages += 1

    async def _deliver(self, batch: list[dict[str, Any]], attempts: int) -> list[dict[str, Any]]:
        """Send ``batch``; return the events still undelivered after ``attempts`` tries."""
        self._last_retry_after = None
        for attempt in range(attempts):
            answer = await self._post(orjson.dumps({"events": batch}), lambda: batch)
            if answer.split and len(batch) > 1:
                half = len(batch) // 2
                first = await self._deliver(batch[:half], attempts)
                return first + await self._deliver(batch[half:], attempts)
            if answer.done:
                return []
            self._last_retry_after = answer.retry_after
            if attempt + 1 < attempts:
                self.stats.retries += 1
                await asyncio.sleep(self._backoff.delay(attempt, retry_after=answer.retry_after))
        self._warn_refused(len(batch), attempts)
        return batch

    def _warn_refused(self, count: int, attempts: int) -> None:
        failure = self._last_failure
        if failure is not None and failure.status in _KEY_REFUSED:
            log.warning("%d events not delivered after %d tries: %s; they are %s and retried", count,
                        attempts, failure, "spooled" if self._spool is not None else "kept in memory")

    async def _post(self, body: bytes, events: Callable[[], list[dict[str, Any]]]) -> _Answer:
        """POST ``body`` (the batch as JSON); ``events`` gives the batch's events when an answer
        needs them one by one."""
        try:
            resp = await self._http.post("/v1/events", content=body)
        except httpx.TransportError as e:
            self._failed(Failure(None, type(e).__name__))
            return _Answer(done=False)
        self.stats.last_status = resp.status_code
        if resp.status_code in (202, 422):
            self._report(orjson.loads(resp.content))
            return _Answer(done=True)
        if resp.status_code == 413:
            return _Answer(done=len(events()) <= 1, split=True)
        if resp.status_code in _RETRYABLE:
            self._failed(Failure.from_response(resp))
            return _Answer(done=False, retry_after=parse_retry_after(resp.headers.get("retry-after")))
        problem = resp.json() if resp.headers.get("content-type", "").endswith("json") else {}
        self._reject_all(events(), problem)
        return _Answer(done=True)

    def _failed(self, failure: Failure) -> None:
        self._last_failure = failure
        self.stats.last_status = failure.status
        self.stats.last_problem = str(failure)

    def _report(self, body: dict[str, Any]) -> None:
        found = body.get("accepted", [])
        rejected = [Rejected(r.get("event_id"), r["type"], r["title"], r["detail"], r["pointer"])
                    for r in body.get("rejected", [])]
        self.stats.accepted += len(found)
        self.stats.rejected += len(rejected)
        if found and self._on_accepted is not None:  # receipts are built only for a listener
            self._on_accepted([Accepted(a["event_id"], a["log"], a["receipt"]) for a in found])
        if rejected and self._on_rejected is not None:
            self._on_rejected(rejected)

    def _reject_all(self, batch: list[dict[str, Any]], problem: dict[str, Any]) -> None:
        kind, title = str(problem.get("type", "about:blank")), str(problem.get("title", "Rejected"))
        detail, pointer = str(problem.get("detail", "")), str(problem.get("pointer", ""))
        self._report({"rejected": [{"event_id": e.get("event_id"), "type": kind, "title": title,
                                    "detail": detail, "pointer": pointer} for e in batch]})
