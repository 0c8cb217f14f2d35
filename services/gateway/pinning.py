"""Tool pinning as pure code: each upstream tool is pinned by the hash of its whole definition as
it came over the wire, and every later listing is compared with the pins.

- A tool's definition hash is ``sha256:`` + hex SHA-256 of the RFC 8785 canonical JSON of the tool
  object as received (name, description, input and output schemas, annotations, ``_meta``, title):
  a changed description, schema or annotation changes it.
- The first definition seen is the approved one. A later listing with another hash makes the tool
  *changed* until an operator approves the new definition (``approve``); whether a changed tool may
  be called meanwhile is the tool's ``on_change`` policy (``block`` or ``flag``; by default
  ``block`` for ``write`` and ``destructive`` tools, ``flag`` for ``read``).
- A tool that disappears from a listing is *removed* (its pin is kept); a renamed tool is a removal
  plus an addition. A new tool is pinned but stays denied until the configuration gives it a tier
  and an agent's allow-list names it (see :mod:`services.gateway.policy`).
- The MCP annotations (``readOnlyHint``, ``destructiveHint``, ``idempotentHint``) give a tier
  *suggestion* for operators; the server sets them, so they never decide anything.

The adapters call :func:`reconcile` inside the transaction that holds a server's pins, so two
gateways that see the same change record it once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from sealtrail.core.canonical import canonical_json
from services.gateway.config import OnChange, Tier

ChangeKind = Literal["added", "removed", "changed"]
Refusal = Literal["unlisted_tool", "removed_tool", "definition_changed"]
DEFAULT_ON_CHANGE: dict[Tier, OnChange] = {"read": "flag", "write": "block", "destructive": "block"}


def def_hash(tool: Mapping[str, Any]) -> str:
    """``sha256:`` + hex SHA-256 of the RFC 8785 canonical JSON of the tool as received."""
    return "sha256:" + hashlib.sha256(canonical_json(dict(tool))).hexdigest()


@dataclass(frozen=True, slots=True)
class Listed:
    """One tool of a fresh upstream listing: its hash and its canonical JSON."""

    name: str
    def_hash: str
    definition: str

    @classmethod
    def of(cls, tool: Mapping[str, Any]) -> Listed:
        body = canonical_json(dict(tool))
        return cls(str(tool["name"]), "sha256:" + hashlib.sha256(body).hexdigest(), body.decode())


@dataclass(frozen=True, slots=True)
class Pin:
    """A server's tool as the state database holds it."""

    server: str
    tool: str
    def_hash: str
    """The hash of the definition the upstream lists now (or listed last, when removed)."""
    approved_hash: str
    """The definition approved for use: the first one seen, or the last one an operator approved."""
    definition: str
    """The canonical JSON of the current definition (no secret: what the upstream shows every client)."""
    listed: bool
    first_seen: float
    changed_at: float
    change_event: str | None = None
    """The ``tool_list`` event that recorded the last change of this pin."""
    approved_by: str | None = None
    approved_at: float | None = None

    @property
    def changed(self) -> bool:
        """The current definition is not the approved one."""
        return self.def_hash != self.approved_hash


@dataclass(frozen=True, slots=True)
class Change:
    tool: str
    change: ChangeKind
    old_hash: str | None
    new_hash: str | None

    def public(self) -> dict[str, Any]:
        return {"tool": self.tool, "change": self.change, "old_hash": self.old_hash, "new_hash": self.new_hash}


def reconcile(server: str, current: Iterable[Pin], listed: Iterable[Listed], *, at: float,
              event_id: str) -> tuple[list[Change], list[Pin]]:
    """Compare a fresh listing with a server's pins: the changes, and the pins to write.

    A server's first listing (no pins yet) is its registration: its tools are added and approved as
    they are. Nothing to write and no change when the listing equals the pins."""
    pins = {p.tool: p for p in current}
    fresh = {t.name: t for t in listed}
    changes: list[Change] = []
    writes: list[Pin] = []
    for name in sorted(fresh):
        t, old = fresh[name], pins.get(name)
        if old is None:
            changes.append(Change(name, "added", None, t.def_hash))
            writes.append(Pin(server, name, t.def_hash, t.def_hash, t.definition, True, at, at, event_id))
        elif not old.listed or old.def_hash != t.def_hash:
            kind: ChangeKind = "added" if not old.listed else "changed"
            changes.append(Change(name, kind, old.def_hash, t.def_hash))
            writes.append(replace(old, def_hash=t.def_hash, definition=t.definition, listed=True, changed_at=at,
                                  change_event=event_id))
    for name in sorted(set(pins) - set(fresh)):
        old = pins[name]
        if old.listed:
            changes.append(Change(name, "removed", old.def_hash, None))
            writes.append(replace(old, listed=False, changed_at=at, change_event=event_id))
    return changes, writes


def approved(pin: Pin, *, by: str, at: float) -> Pin:
    """The pin with its current definition approved."""
    return replace(pin, approved_hash=pin.def_hash, approved_by=by, approved_at=at)


def on_change(policy: OnChange | None, tier: Tier) -> OnChange:
    """The effective policy for a changed definition: the configured one, else by tier."""
    return policy or DEFAULT_ON_CHANGE[tier]


def refusal(pin: Pin | None, policy: OnChange) -> Refusal | None:
    """Why a call to a tool must be refused because of its pin, or None (a changed definition under
    ``flag`` is allowed; the caller flags it)."""
    if pin is None:
        return "unlisted_tool"
    if not pin.listed:
        return "removed_tool"
    if pin.changed and policy == "block":
        return "definition_changed"
    return None


def suggest_tier(definition: Mapping[str, Any]) -> Tier | None:
    """A tier suggested by the tool's MCP annotations, or None when they say nothing.

    ``readOnlyHint: true`` suggests read; otherwise ``destructiveHint`` (which MCP defaults to true
    for a tool that is not read-only) suggests destructive, and ``destructiveHint: false`` write.
    Only a hint: the server sets annotations, so the configuration decides."""
    notes = definition.get("annotations")
    if not isinstance(notes, Mapping):
        return None
    if notes.get("readOnlyHint") is True:
        return "read"
    if notes.get("destructiveHint") is False:
        return "write"
    if notes.get("destructiveHint") is True or notes.get("readOnlyHint") is False:
        return "destructive"
    return None


def hints(definition: Mapping[str, Any]) -> dict[str, bool]:
    """The boolean hint annotations the server gave, as it gave them."""
    notes = definition.get("annotations")
    if not isinstance(notes, Mapping):
        return {}
    keys = ("readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint")
    return {k: v for k in keys if isinstance(v := notes.get(k), bool)}
