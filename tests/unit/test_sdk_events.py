"""The SDK's event builders produce events that ingest's validation accepts as they are."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sealtrail.core.validation import validate_batch
from sealtrail.sdk import (
    approval,
    credential_rotation,
    health_check,
    rate_limit,
    server_status,
    tool_call,
    tool_list,
    uuid7,
)


def test_every_builder_validates() -> None:
    """One event of each gateway type, built with the SDK, passes validate_batch unchanged."""
    now = datetime.now(UTC)
    events = [
        tool_call(agent_id="a", server_id="s", tool_name="t", decision="allow", status="ok",
                  latency_ms=3, cost_micros=10, currency="EUR", payload={"args": {}}, subjects=["user:x"]),
        approval(approval_id="ap", call_event_id=uuid7(), decision="granted", payload={"approver": "y"}),
        rate_limit(limit_id="l", window_s=60, limit=10, observed=11, scope="agent"),
        health_check(server_id="s", status="degraded", latency_ms=900),
        tool_list(server_id="s", tools=[("search", "sha256:" + "a" * 64)]),
        server_status(server_id="s", state="inactive"),
        credential_rotation(server_id="s", credential_id="c", reason="manual", expires_at=now),
    ]
    accepted, rejected = validate_batch(events, now=now)
    assert rejected == [] and len(accepted) == len(events)
    assert all(None not in e.values() for e in events)


def test_uuid7_is_version_7_and_time_ordered() -> None:
    """Ids are RFC 9562 version 7 and sort by their millisecond."""
    ids = [uuid7(ms=1_700_000_000_000 + i) for i in range(50)]
    assert all(uuid.UUID(i).version == 7 and uuid.UUID(i).variant == uuid.RFC_4122 for i in ids)
    assert ids == sorted(ids) and len(set(ids)) == 50
