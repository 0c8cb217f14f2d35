"""Capability discovery: every fresh listing of an upstream's tools is pinned in the state database,
each change is recorded as a ``tool_list`` event, and the gate reads the pins from a short cache.

A listing is fresh when the gateway connects to an upstream (registration is its first connection),
after a ``notifications/tools/list_changed``, after a health check, and whenever an agent's
``tools/list`` made the gateway ask the upstream again. The ``tool_list`` event is a snapshot of the
server's whole listing (name and ``def_hash`` of each tool, no agent): the projector diffs successive
snapshots of a server, so its drift report works from these events. The change itself (tool, kind,
old and new hash) is also in the event's sealed payload.

Pins are shared through the state database: an approval made by ``sealtrail gateway tools approve``
in another process reaches this one within ``cache_s``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from sealtrail.errors import InvalidInputError
from sealtrail.sdk import events
from services.gateway.pinning import Change, Listed, Pin
from services.gateway.ports import PinStore

log = logging.getLogger("sealtrail.gateway")
Record = Callable[[dict[str, Any]], Awaitable[None]]
PIN_CACHE_S = 2.0


class Discovery:
    def __init__(self, store: PinStore, record: Record, *, cache_s: float = PIN_CACHE_S) -> None:
        self._store, self._record, self._cache_s = store, record, cache_s
        self._pins: dict[str, tuple[float, dict[str, Pin]]] = {}
        self._pinned: dict[str, list[dict[str, Any]]] = {}
        """The listing object each server's pins were last synced from (the upstream caches it)."""

    async def listed(self, server: str, tools: list[dict[str, Any]]) -> list[Change]:
        """Pin a listing of ``server``'s tools; record and return the changes (none when the same
        listing object was pinned already, or another gateway recorded the change first)."""
        if self._pinned.get(server) is tools:
            return []
        fresh = _canonical(server, tools)
        event_id = events.uuid7()
        changes = await self._store.sync_pins(server, fresh, at=time.time(), event_id=event_id)
        self._pinned[server] = tools
        self._pins.pop(server, None)
        if changes:
            for c in changes:  # a new tool stays denied until configured; a changed or removed one is news
                log.log(logging.INFO if c.change == "added" else logging.WARNING, "server %s: tool %r %s (%s -> %s)",
                        server, c.tool[:100], c.change, c.old_hash, c.new_hash)
            await self._record(events.tool_list(
                event_id=event_id, server_id=server, tools=sorted((t.name, t.def_hash) for t in fresh),
                payload={"changes": [c.public() for c in changes]}))
        return changes

    async def on_tools(self, server: str, tools: list[dict[str, Any]]) -> None:
        """A health check listed ``server``'s tools: pin them."""
        await self.listed(server, tools)

    def pinned(self, server: str) -> bool:
        """Whether this process has pinned a listing of ``server`` since it started."""
        return server in self._pinned

    def forget(self, server: str | None = None) -> None:
        """Drop cached pins (after an approval) so the next read comes from the store."""
        if server is None:
            self._pins.clear()
        else:
            self._pins.pop(server, None)

    async def pin(self, server: str, tool: str) -> Pin | None:
        """The pin of a tool, from a cache at most ``cache_s`` old."""
        return (await self._server_pins(server)).get(tool)

    def cached(self, server: str, tool: str) -> Pin | None:
        """The cached pin, without asking the store (for recording calls refused before the pin check)."""
        entry = self._pins.get(server)
        return None if entry is None else entry[1].get(tool)

    async def _server_pins(self, server: str) -> dict[str, Pin]:
        now = time.monotonic()
        entry = self._pins.get(server)
        if entry is None or now - entry[0] > self._cache_s:
            entry = (now, {p.tool: p for p in await self._store.list_pins(server)})
            self._pins[server] = entry
        return entry[1]


def _canonical(server: str, tools: list[dict[str, Any]]) -> list[Listed]:
    fresh: list[Listed] = []
    for tool in tools:
        try:
            fresh.append(Listed.of(tool))
        except InvalidInputError:  # e.g. a NaN in a schema: not pinnable, so never callable
            log.warning("server %s lists tool %r with a definition that has no canonical JSON; it stays "
                        "unpinned and refused", server, str(tool.get("name"))[:100])
    return fresh
