"""The Python SDK for gateways: typed event builders and an async batching client with a spool.

Imports only httpx, orjson and the standard library, never the server extras.
"""

from __future__ import annotations

from sealtrail.sdk.backoff import Backoff, parse_retry_after
from sealtrail.sdk.client import Accepted, DeliveryError, Rejected, SealtrailClient
from sealtrail.sdk.events import (
    approval,
    credential_rotation,
    health_check,
    rate_limit,
    server_status,
    timestamp,
    tool_call,
    tool_list,
    uuid7,
)
from sealtrail.sdk.spool import Spool, SpoolFullError

__all__ = [
    "Accepted", "Backoff", "DeliveryError", "Rejected", "SealtrailClient", "Spool", "SpoolFullError",
    "approval", "credential_rotation", "health_check", "parse_retry_after", "rate_limit", "server_status",
    "timestamp", "tool_call", "tool_list", "uuid7",
]
