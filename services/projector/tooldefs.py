"""Pure diffing of tool-list snapshots: which tools a server added, removed or changed.

Each ``tool_list`` event is a full snapshot of one server's tools. Compared with the server's
previous snapshot (in log order), a name that appears is ``added``, a name that disappears is
``removed`` and a name whose ``def_hash`` differs is ``changed``. A server's first snapshot adds
every tool it lists. Snapshots are per server, whichever agent reported them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from services.projector.rollups import ToolSnapshot


@dataclass(frozen=True, slots=True)
class CurrentTool:
    """A tool a server offers now, and since when its current definition is the current one."""

    def_hash: str
    log_id: str
    since_at: datetime
    since_idx: int


@dataclass(frozen=True, slots=True)
class Change:
    log_id: str
    idx: int
    server_id: str
    tool_name: str
    change: str  # added | removed | changed
    old_hash: str | None
    new_hash: str | None
    occurred_at: datetime


@dataclass(slots=True)
class DefinitionSeen:
    """Where and when one definition (server, tool, def_hash) appeared in this batch's snapshots."""

    log_id: str
    first_seen_at: datetime
    last_seen_at: datetime
    first_idx: int
    last_idx: int
    snapshots: int = 0


ServerState = dict[str, CurrentTool]  # tool name -> current definition


@dataclass
class SnapshotResult:
    """The changes, the definitions seen, and the new state of every server that was touched."""

    changes: list[Change] = field(default_factory=list)
    seen: dict[tuple[str, str, str], DefinitionSeen] = field(default_factory=dict)
    servers: dict[str, ServerState] = field(default_factory=dict)


def apply_snapshots(current: Mapping[str, ServerState], snapshots: Iterable[ToolSnapshot]) -> SnapshotResult:
    """Apply ``snapshots`` (log order) to the servers' ``current`` state; ``current`` is not modified."""
    result = SnapshotResult()
    for snap in snapshots:
        before = result.servers.get(snap.server_id)
        if before is None:
            before = dict(current.get(snap.server_id, {}))
        result.servers[snap.server_id] = _apply_one(before, snap, result.changes)
        for name, def_hash in snap.tools:
            _seen(result.seen, snap, name, def_hash)
    return result


def _apply_one(before: ServerState, snap: ToolSnapshot, changes: list[Change]) -> ServerState:
    after: ServerState = {}
    listed = dict(snap.tools)
    for name in sorted(listed):
        new_hash = listed[name]
        old = before.get(name)
        if old is not None and old.def_hash == new_hash:
            after[name] = old
            continue
        after[name] = CurrentTool(new_hash, snap.log_id, snap.occurred_at, snap.idx)
        kind = "added" if old is None else "changed"
        changes.append(Change(snap.log_id, snap.idx, snap.server_id, name, kind,
                              None if old is None else old.def_hash, new_hash, snap.occurred_at))
    for name in sorted(set(before) - set(listed)):
        changes.append(Change(snap.log_id, snap.idx, snap.server_id, name, "removed",
                              before[name].def_hash, None, snap.occurred_at))
    return after


def _seen(seen: dict[tuple[str, str, str], DefinitionSeen], snap: ToolSnapshot, name: str,
          def_hash: str) -> None:
    key = (snap.server_id, name, def_hash)
    d = seen.get(key)
    if d is None:
        d = seen[key] = DefinitionSeen(snap.log_id, snap.occurred_at, snap.occurred_at, snap.idx, snap.idx)
    d.first_seen_at, d.last_seen_at = min(d.first_seen_at, snap.occurred_at), max(d.last_seen_at,
                                                                                  snap.occurred_at)
    d.first_idx, d.last_idx = min(d.first_idx, snap.idx), max(d.last_idx, snap.idx)
    d.snapshots += 1
