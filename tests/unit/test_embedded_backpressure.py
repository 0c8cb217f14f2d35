"""The embedded default's backpressure: the bound, the admission that waits or refuses, the problem it becomes."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import orjson
import pytest

from sealtrail.cli.embedded.backpressure import BACKLOG, THROTTLED, LedgerBacklog
from sealtrail.errors import BackpressureError
from sealtrail.infra.bus import TopicSpec
from sealtrail.infra.problems import problem_for


class _Source:
    def __init__(self, backlog: int | None) -> None:
        self.value = backlog
        self._committed = asyncio.Event()

    def backlog(self) -> int | None:
        return self.value

    def committed(self) -> asyncio.Event:
        return self._committed

    def commit(self, backlog: int) -> None:
        self.value = backlog
        self._committed.set()
        self._committed = asyncio.Event()


class _Recorder:
    def __init__(self) -> None:
        self.published: list[tuple[str, int]] = []

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def publish(self, topic: str, records: Sequence[tuple[bytes, bytes]]) -> None:
        self.published.append((topic, len(records)))

    async def ensure_topics(self, specs: Sequence[TopicSpec]) -> None:
        return None


class _Admitted:
    """Publishes each batch inside the gate's admission, as ingest seals and publishes a batch."""

    def __init__(self, gate: LedgerBacklog, inner: _Recorder) -> None:
        self._gate, self._inner = gate, inner

    async def publish(self, topic: str, records: Sequence[tuple[bytes, bytes]]) -> None:
        async with self._gate.admit(len(records)):
            await self._inner.publish(topic, records)


def _throttled(backlog: int | None, bound: int = 10, wait: float = 0.05) -> tuple[_Admitted, _Recorder, _Source]:
    source, inner = _Source(backlog), _Recorder()
    gate = LedgerBacklog(bound=bound, retry_after_s=2.5, max_wait_s=wait)
    gate.attach(source)
    return _Admitted(gate, inner), inner, source


def test_over_the_bound_nothing_is_appended_and_the_error_says_when_to_retry() -> None:
    """Past the bound for the whole wait, publishing to the sealed topic raises BackpressureError
    before the append."""
    publisher, inner, _ = _throttled(11)
    before = THROTTLED._value.get()
    with pytest.raises(BackpressureError) as raised:
        asyncio.run(publisher.publish("sealed", [(b"k", b"v")]))
    assert inner.published == []
    assert raised.value.retry_after == 2.5
    assert THROTTLED._value.get() == before + 1
    assert BACKLOG._value.get() == 11


def test_at_the_bound_and_below_it_records_pass() -> None:
    """A backlog equal to the bound is still accepted; the bound is the most the ledger may lag."""
    publisher, inner, source = _throttled(10)
    asyncio.run(publisher.publish("sealed", [(b"k", b"v")] * 3))
    source.value = 0
    asyncio.run(publisher.publish("sealed", [(b"k", b"v")]))
    assert inner.published == [("sealed", 3), ("sealed", 1)]


def test_an_unresumed_ledger_is_never_refused() -> None:
    """Nothing is refused before the ledger resumed (its backlog is unknown until then)."""
    publisher, inner, source = _throttled(1000)
    source.value = None
    asyncio.run(publisher.publish("sealed", [(b"k", b"v")]))
    assert inner.published == [("sealed", 1)]


def test_a_batch_over_the_bound_waits_for_a_commit_that_makes_room() -> None:
    """A commit during the wait lets the waiting batch in; it is appended, not refused."""
    publisher, inner, source = _throttled(50, wait=5.0)

    async def scenario() -> None:
        waiting = asyncio.create_task(publisher.publish("sealed", [(b"k", b"v")] * 2))
        await asyncio.sleep(0.05)
        assert not waiting.done() and inner.published == []
        source.commit(40)  # still over: keeps waiting
        await asyncio.sleep(0.05)
        assert not waiting.done()
        source.commit(10)
        await asyncio.wait_for(waiting, timeout=1)

    asyncio.run(scenario())
    assert inner.published == [("sealed", 2)]


def test_batches_being_appended_count_in_the_backlog() -> None:
    """Records admitted but still being appended count, so one commit cannot let every waiter in."""
    gate = LedgerBacklog(bound=10, max_wait_s=0.05)
    source = _Source(0)
    gate.attach(source)

    async def scenario() -> None:
        async with gate.admit(8):
            assert gate.records() == 8
            async with gate.admit(5):  # 8 <= 10: admitted, now 13
                with pytest.raises(BackpressureError):
                    async with gate.admit(1):
                        pass
        assert gate.records() == 0

    asyncio.run(scenario())


def test_a_detached_gate_refuses_nothing() -> None:
    """After the ledger stops (detached), the gate measures nothing and refuses nothing."""
    gate = LedgerBacklog(bound=1, max_wait_s=0)
    gate.attach(_Source(5))
    gate.attach(None)

    async def scenario() -> None:
        async with gate.admit(3):
            pass

    asyncio.run(scenario())
    assert gate.records() == 0


def test_the_error_is_a_429_problem_with_retry_after() -> None:
    """BackpressureError (not its 503 subclass UnavailableError) maps to 429 and a whole-second Retry-After."""
    gate = LedgerBacklog(bound=1, retry_after_s=0.3, max_wait_s=0)
    gate.attach(_Source(2))

    async def scenario() -> None:
        async with gate.admit(1):
            pass

    with pytest.raises(BackpressureError) as raised:
        asyncio.run(scenario())
    response = problem_for(raised.value)
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "1"
    assert response.media_type == "application/problem+json"
    body = orjson.loads(bytes(response.body))
    assert body["type"].endswith("/backpressure") and "2 records behind" in body["detail"]


def test_a_bound_below_one_is_refused() -> None:
    """A bound of 0 would refuse everything whenever a single record waits."""
    with pytest.raises(ValueError, match="at least 1"):
        LedgerBacklog(bound=0)
