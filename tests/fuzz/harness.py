"""Running schemathesis against a live Sealtrail app, and the loop thread that keeps the app live.

The services run in an asyncio loop of their own, in a background thread, served by a real uvicorn
on a 127.0.0.1 port; schemathesis calls them synchronously over HTTP from the test thread. Each
OpenAPI operation gets a fixed number of derandomized examples (positive and negative generation),
so the default run is bounded and repeatable; ``SEALTRAIL_FUZZ_EXAMPLES`` raises the number.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.fuzz.budget import examples

T = TypeVar("T")
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


class LoopThread:
    """An asyncio loop in a daemon thread; ``run`` executes a coroutine there and waits for it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="fuzz-services", daemon=True)
        self._thread.start()
        self._stack = contextlib.AsyncExitStack()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 180) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def enter(self, cm: contextlib.AbstractAsyncContextManager[T]) -> T:
        """Enter ``cm`` in the loop; it is exited by :meth:`close`, in reverse order."""
        return self.run(self._stack.enter_async_context(cm))

    def close(self) -> None:
        try:
            self.run(self._stack.aclose())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=30)
            self.loop.close()


@contextlib.asynccontextmanager
async def cleanup(action: Callable[[], Awaitable[None]]) -> AsyncIterator[None]:
    """Run ``action`` when the loop thread's stack unwinds."""
    try:
        yield
    finally:
        await action()


@dataclass
class FuzzReport:
    """Cases run per operation (``"METHOD /path"``), and the status codes seen."""

    cases: dict[str, int] = field(default_factory=dict)
    statuses: dict[int, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.cases.values())

    def summary(self, name: str) -> str:
        per_op = ", ".join(f"{op}={n}" for op, n in sorted(self.cases.items()))
        return f"{name}: {self.total} cases over {len(self.cases)} operations ({per_op}); statuses {self.statuses}"


def load_schema(base_url: str) -> Any:
    """The OpenAPI document the running app serves at /openapi.json."""
    return schemathesis.openapi.from_url(f"{base_url}/openapi.json")


def fuzz_operations(
    base_url: str, headers_for: Callable[[str, str], dict[str, str]], report: FuzzReport, *,
    default_examples: int = 25, check: Callable[[str, Any], None] | None = None,
    validate: bool = True,
) -> None:
    """Run every operation of the app at ``base_url`` with positive and negative cases.

    ``headers_for(method, path)`` gives the headers (the token) of each request. With ``validate``
    the four schemathesis checks must pass; ``check`` is called on each response as well.
    """
    schema = load_schema(base_url)
    session = requests.Session()
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        label = f"{operation.method.upper()} {operation.path}"
        report.cases.setdefault(label, 0)
        try:
            _fuzz_one(operation, label, base_url, session, headers_for(operation.method.upper(), operation.path),
                      report, examples(default_examples), check, validate)
        except Exception as e:  # every operation runs; all failures are reported together
            failures.append(f"--- {label}:\n{e}")
    assert not failures, f"{len(failures)} operations failed:\n" + "\n".join(failures)


def _fuzz_one(operation: Any, label: str, base_url: str, session: requests.Session, headers: dict[str, str],
              report: FuzzReport, count: int, check: Callable[[str, Any], None] | None, validate: bool) -> None:
    strategy = st.one_of(operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
                         operation.as_strategy(generation_mode=GenerationMode.NEGATIVE))

    @settings(max_examples=count, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def run(case: Any) -> None:
        response = case.call(base_url=base_url, session=session, headers=headers, timeout=60)
        report.cases[label] += 1
        report.statuses[response.status_code] = report.statuses.get(response.status_code, 0) + 1
        if validate:
            case.validate_response(response, checks=CHECKS, headers=headers)
        if check is not None:
            check(label, response)

    run()
