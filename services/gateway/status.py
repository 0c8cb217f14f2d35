"""Server status (enabled or disabled by an operator) and the admission of calls to a server.

A disabled server keeps its registration, credentials, pins and history; calls to it are refused
at once with -32007. An unhealthy server (see :mod:`services.gateway.health`) is refused with
-32008 until a check passes. Both states live in the shared state database, so every gateway
process of a deployment agrees; each process reads them at most every ``cache_s`` seconds, never
once per call. Each status change is a ``server_status`` event (reason and operator in the sealed
payload), and the history is kept in the store.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sealtrail.errors import ConflictError, InvalidInputError
from sealtrail.sdk import events
from services.gateway import errors
from services.gateway.ports import HealthStore, ServerHealth, ServerState, StatusChange, StatusStore

Record = Callable[[dict[str, Any]], Awaitable[None]]
MAX_REASON = 500


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why calls to a server are refused now: the JSON-RPC error and the recorded ``error_type``."""

    code: int
    error_type: str
    message: str
    data: dict[str, Any]


async def change_state(store: StatusStore, record: Record, *, server: str, state: ServerState, reason: str,
                       by: str) -> StatusChange:
    """Disable or enable ``server``; ConflictError when it already is in that state."""
    reason = reason.strip()
    if not reason:
        raise InvalidInputError("a reason is required (--reason TEXT)", pointer="/reason")
    if len(reason) > MAX_REASON or any(ord(ch) < 0x20 for ch in reason):
        raise InvalidInputError(f"the reason must be one line of at most {MAX_REASON} characters",
                                pointer="/reason")
    if not by.strip():
        raise InvalidInputError("the operator's name is required", pointer="/by")
    change = StatusChange(server, state, reason, by, time.time())
    if not await store.set_server_state(change):
        raise ConflictError(f"server {server} is already {'enabled' if state == 'active' else 'disabled'}")
    await record(events.server_status(server_id=server, state=state, payload={"reason": reason, "by": by}))
    return change


def public(change: StatusChange) -> dict[str, Any]:
    return {"server": change.server, "state": change.state, "reason": change.reason, "by": change.by,
            "at": change.at}


class ServerGuard:
    """Answers "may a call go to this server now?" from the store's status and health, cached."""

    def __init__(self, store: StatusStore, health: HealthStore, *, cache_s: float) -> None:
        self._status, self._health = store, health
        self._cache_s = cache_s
        self._read_at = float("-inf")
        self._inactive: dict[str, StatusChange] = {}
        self._unhealthy: dict[str, ServerHealth] = {}
        self._lock = asyncio.Lock()

    def invalidate(self) -> None:
        """Read the store again at the next call (after a change made by this process)."""
        self._read_at = float("-inf")

    def note(self, health: ServerHealth) -> None:
        """Take a check this process just made, without waiting for the cache."""
        if health.state == "unhealthy":
            self._unhealthy[health.server] = health
        else:
            self._unhealthy.pop(health.server, None)

    async def _refresh(self) -> None:
        if time.monotonic() - self._read_at < self._cache_s:
            return
        async with self._lock:
            if time.monotonic() - self._read_at < self._cache_s:
                return
            self._inactive = await self._status.inactive_servers()
            self._unhealthy = {h.server: h for h in await self._health.list_health() if h.state == "unhealthy"}
            self._read_at = time.monotonic()

    async def refusal(self, server: str) -> Refusal | None:
        await self._refresh()
        off = self._inactive.get(server)
        if off is not None:
            return Refusal(errors.SERVER_DISABLED, "server_disabled",
                           f"server {server} is disabled by an operator: {off.reason}",
                           {"server": server, "reason": off.reason, "since": off.at})
        sick = self._unhealthy.get(server)
        if sick is not None:
            what = sick.status.replace("_", " ")
            return Refusal(errors.SERVER_UNHEALTHY, "server_unhealthy",
                           f"server {server} is unhealthy ({what}, {sick.failures} failed health checks in a row); "
                           "calls resume when a check passes",
                           {"server": server, "status": sick.status, "failures": sick.failures,
                            "checked_at": sick.checked_at})
        return None
