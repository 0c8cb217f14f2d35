"""Stored copies of a log entry checked against its signed bytes (DESIGN §8.7). Pure code.

Beside each entry's bytes the ledger stores its RFC 6962 leaf hash and searchable copies of header
fields (columns); the projector derives read models from the entries. Only the entry bytes are
signed (through the leaf and the checkpoint), so every copy is checked against them before a
person is shown anything that relied on it. This module holds the comparison, shared by the query
API (per answer) and the read-model check (whole log).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sealtrail.core.merkle import leaf_hash

# Column copies of ``entries`` and the header field each copies.
COLUMN_FIELDS: dict[str, str] = {
    "tenant_id": "tenant", "event_id": "event_id", "type": "type", "occurred_at": "occurred_at",
    "agent_id": "agent_id", "session_id": "session_id", "server_id": "server_id", "tool_name": "tool_name",
    "tool_tier": "tool_tier", "decision": "decision", "status": "status",
}


def as_time(value: object) -> datetime | None:
    """A datetime from a database value or an RFC 3339 header string (None if neither)."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def _as_uuid(value: object) -> uuid.UUID | None:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def same(column: str, stored: object, header: Mapping[str, Any]) -> bool:
    """Whether the stored copy ``column`` equals the header's value (absent equals NULL)."""
    signed = header.get(COLUMN_FIELDS.get(column, column))
    if column == "event_id":
        return signed is not None and _as_uuid(stored) == _as_uuid(signed)
    if column == "occurred_at":
        t = as_time(stored)
        return t is not None and t == as_time(signed)
    return stored == signed


def disagreements(entry: bytes, leaf: bytes, header: Mapping[str, Any], columns: Mapping[str, Any]) -> list[str]:
    """The stored copies that disagree with the signed ``entry``: ``leaf`` when the bytes do not
    hash to the stored leaf, then each column (``COLUMN_FIELDS`` names) whose value differs."""
    bad = [] if leaf_hash(entry) == leaf else ["leaf"]
    bad += [name for name, value in columns.items() if not same(name, value, header)]
    return bad
