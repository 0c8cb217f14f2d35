"""Health checks of upstream servers: on a schedule per server and on demand.

A check opens a fresh connection with the server's current stored credential, initializes, lists
the tools and measures the latency of the whole. A stdio server the gateway is already running with
the current credential is checked on that connection instead (a tools/list), not by starting a
second process. It passes when the tools were listed; a failure is
``credential_rejected`` (the upstream answered 401/403), ``timeout``, ``protocol_error`` (a
JSON-RPC error) or ``unreachable``. Each check is a ``health_check`` event: ``healthy`` when it
passed, ``degraded`` when it failed but fewer than ``unhealthy_after`` checks failed in a row,
``unhealthy`` after that (calls are then refused at once, see :mod:`services.gateway.status`,
until a check passes). A check of a rotation's candidate credential is ``healthy`` or ``degraded``
and does not change the server's state.

After every passing check the tools as listed go to the ``on_tools(server, tools)`` listeners
(:meth:`HealthMonitor.add_tools_listener`), for tool pinning.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from mcp.shared.exceptions import MCPError

from sealtrail.core.sealing import Kek
from sealtrail.errors import InvalidInputError, ServiceStartError
from sealtrail.sdk import events
from services.gateway import credentials
from services.gateway.config import GatewayConfig, ServerConfig
from services.gateway.credentials import Check, Credential
from services.gateway.errors import CredentialRejectedError, UpstreamError, UpstreamTimeoutError
from services.gateway.ports import GatewayStore, SealedCredential
from services.gateway.status import ServerGuard
from services.gateway.upstream import Upstream

log = logging.getLogger("sealtrail.gateway")
OnTools = Callable[[str, list[dict[str, Any]]], Awaitable[None]]
"""``on_tools(server, tools)``: the server's tools exactly as a passing check listed them."""
Record = Callable[[dict[str, Any]], Awaitable[None]]
Trigger = Literal["schedule", "on_demand", "rotation", "candidate"]
MAX_CHECK_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class Probe:
    check: Check
    tools: list[dict[str, Any]] | None = None


@dataclass(frozen=True, slots=True)
class Report:
    """One check as the CLI and the HTTP API show it."""

    server: str
    status: str
    latency_ms: int
    state: str
    failures: int
    message: str = ""
    tools: int | None = None
    credential_version: int | None = None
    trigger: str = "on_demand"

    def public(self) -> dict[str, Any]:
        return {"server": self.server, "ok": self.status == "ok", "status": self.status, "state": self.state,
                "failures": self.failures, "latency_ms": self.latency_ms, "message": self.message,
                "tools": self.tools, "credential_version": self.credential_version, "trigger": self.trigger}


def classify(error: BaseException) -> tuple[str, str]:
    """(status, message) of a failed check; messages name the server and the kind, never a secret."""
    if isinstance(error, CredentialRejectedError):
        return "credential_rejected", str(error)
    if isinstance(error, UpstreamTimeoutError | TimeoutError):
        return "timeout", str(error) or "timed out"
    if isinstance(error, MCPError):
        return "protocol_error", f"JSON-RPC error {error.code}: {str(error.message)[:200]}"
    if isinstance(error, UpstreamError):
        return "unreachable", str(error)
    return "unreachable", type(error).__name__


async def probe(server: ServerConfig, credential: Credential | None) -> Probe:
    """Connect afresh with ``credential``, initialize and list the tools, timing all of it."""
    timeout = min(server.timeout_s, MAX_CHECK_TIMEOUT_S)

    async def source(_: str) -> Credential | None:
        return credential

    upstream = Upstream(server, credentials=source, connect_timeout_s=timeout)
    started = time.perf_counter()
    try:
        try:
            async with asyncio.timeout(timeout * 2):
                tools = await upstream.tools()
            return Probe(Check("ok", _ms(started), f"{len(tools)} tools listed"), tools)
        except Exception as e:
            status, message = classify(e)
            return Probe(Check(status, _ms(started), message))
    finally:  # closing is not part of the measured latency
        with contextlib.suppress(Exception):
            await upstream.close()


async def probe_live(upstream: Upstream) -> Probe:
    """List the tools on the gateway's open connection to a running server, timing it."""
    started = time.perf_counter()
    try:
        async with asyncio.timeout(min(upstream.cfg.timeout_s, MAX_CHECK_TIMEOUT_S)):
            tools = await upstream.relist()
        return Probe(Check("ok", _ms(started), f"{len(tools)} tools listed by the running server"), tools)
    except Exception as e:
        status, message = classify(e)
        return Probe(Check(status, _ms(started), message))


def _ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)


@dataclass
class HealthMonitor:
    """Runs checks, keeps the shared health state and records each check."""

    cfg: GatewayConfig
    store: GatewayStore
    record: Record
    kek: Kek | None = None
    guard: ServerGuard | None = None
    upstreams: dict[str, Upstream] = field(default_factory=dict)
    _listeners: list[OnTools] = field(default_factory=list)
    _tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)

    def add_tools_listener(self, on_tools: OnTools) -> None:
        """Call ``on_tools(server, tools)`` after every passing check (exceptions are logged, not raised)."""
        self._listeners.append(on_tools)

    async def check(self, server: str, *, trigger: Trigger = "on_demand") -> Report:
        """Check ``server`` with its current credential, update its state and record the check."""
        cfg = credentials.server_of(self.cfg, server)
        try:
            credential = await credentials.current(self.store, self.kek, server)
        except Exception as e:  # a credential that cannot be opened is a failed check, not a crash
            found = Probe(Check("credential_unavailable", 0, f"{type(e).__name__}: {e}"))
            credential = None
        else:
            live = self.upstreams.get(server)
            version = None if credential is None else credential.version
            if cfg.command is not None and live is not None and live.connected \
                    and live.credential_version == version:
                found = await probe_live(live)  # a running stdio server: no second process to start
            else:
                found = await probe(cfg, credential)
        c = found.check
        health = await self.store.record_health(
            server, ok=c.ok, status=c.status, at=time.time(), latency_ms=c.latency_ms,
            tools=None if found.tools is None else len(found.tools), unhealthy_after=cfg.unhealthy_after)
        if credential is not None:
            await self.store.note_credential_check(server, credential.version, health.checked_at, c.status)
        if self.guard is not None:
            self.guard.note(health)
        report = Report(server, c.status, c.latency_ms, health.state, health.failures, c.message,
                        health.tools, None if credential is None else credential.version, trigger)
        await self._record(report, "healthy" if c.ok else "unhealthy" if health.state == "unhealthy" else "degraded")
        await self._after(server, found, credential)
        return report

    async def check_candidate(self, server: ServerConfig, credential: Credential) -> Check:
        """Check a rotation's new value before it is switched to (the server's state is unchanged)."""
        found = await probe(server, credential)
        c = found.check
        await self._record(Report(server.name, c.status, c.latency_ms, "candidate", 0, c.message,
                                  None if found.tools is None else len(found.tools), credential.version, "candidate"),
                           "healthy" if c.ok else "degraded")
        return c

    async def rotate(self, server: str, secret: str, *, by: str, reason: str = "manual"
                     ) -> tuple[SealedCredential, Report]:
        """``credential rotate``: switch to ``secret`` only when a check with it passes, then check the
        server with it as current (its state and the live connection follow)."""
        if self.kek is None:
            raise ServiceStartError("stored credentials need [state] kek_file in the gateway configuration")
        if reason not in credentials.REASONS:
            raise InvalidInputError(f"reason must be one of {list(credentials.REASONS)}", pointer="/reason")
        row, _ = await credentials.rotate_credential(self.store, self.kek, self.record,
                                                     credentials.server_of(self.cfg, server), self.check_candidate,
                                                     secret=secret, by=by, reason=reason)
        return row, await self.check(server, trigger="rotation")

    async def _record(self, r: Report, status: Literal["healthy", "degraded", "unhealthy"]) -> None:
        payload = {k: v for k, v in r.public().items() if k not in ("server", "latency_ms") and v is not None}
        await self.record(events.health_check(server_id=r.server, status=status, latency_ms=r.latency_ms,
                                              error_type=None if r.status == "ok" else r.status, payload=payload))

    async def _after(self, server: str, found: Probe, credential: Credential | None) -> None:
        live = self.upstreams.get(server)
        if live is not None and live.connected and (
                (not found.check.ok and live.cfg.url is not None)  # a restarted upstream forgot the session
                or (credential is not None and live.credential_version != credential.version)):  # a new credential
            await live.close()  # the next call connects anew
        if found.tools is None:
            return
        for listener in self._listeners:
            try:
                await listener(server, found.tools)
            except Exception:
                log.exception("a tools listener failed after the health check of server %s", server)

    def start(self) -> None:
        """Start the scheduled checks of every server whose ``health_interval_seconds`` is above 0."""
        for name, server in self.cfg.servers.items():
            if server.health_interval_s > 0 and name not in self._tasks:
                self._tasks[name] = asyncio.create_task(self._loop(name), name=f"gateway-health-{name}")

    async def _loop(self, server: str) -> None:
        while True:
            cfg = self.cfg.servers.get(server)
            if cfg is None or cfg.health_interval_s <= 0:
                return
            await asyncio.sleep(cfg.health_interval_s)
            try:
                await self.check(server, trigger="schedule")
            except Exception as e:  # the state database or the ledger may be away for a while
                log.warning("scheduled health check of server %s failed: %s", server, type(e).__name__)

    def apply(self, cfg: GatewayConfig) -> None:
        """Take a reloaded configuration: new servers get their schedule."""
        self.cfg = cfg
        self.start()

    async def close(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        for task in self._tasks.values():
            with contextlib.suppress(BaseException):
                await task
        self._tasks.clear()
