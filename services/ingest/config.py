"""Ingest's limits and tunables (the dependencies themselves come from :class:`Settings`)."""

from __future__ import annotations

from dataclasses import dataclass

from sealtrail.infra.apikeys import DEFAULT_AUTH_CACHE_TTL_S
from sealtrail.infra.kafka import DEFAULT_PUBLISH_TIMEOUT_S
from sealtrail.infra.keycache import DEFAULT_KEY_CACHE_TTL_S
from services.ingest.groupcommit import DEFAULT_GROUP_MAX_EVENTS

MAX_BATCH_EVENTS = 1000
"""Most events one ``POST /v1/events`` may carry (413 beyond)."""
MAX_BODY_BYTES = 8 * 1024 * 1024
"""Largest request body, in bytes (413 beyond; checked on Content-Length and on the bytes read)."""
MAX_IN_FLIGHT_BATCHES = 64
"""Batches one process seals and publishes at once; one more is answered 429 with Retry-After."""
BACKPRESSURE_RETRY_AFTER_S = 1.0
UNAVAILABLE_RETRY_AFTER_S = 2.0


@dataclass(frozen=True, slots=True)
class IngestOptions:
    """Limits of one ingest process. The defaults are the documented production values."""

    max_batch_events: int = MAX_BATCH_EVENTS
    max_body_bytes: int = MAX_BODY_BYTES
    max_in_flight: int = MAX_IN_FLIGHT_BATCHES
    backpressure_retry_after_s: float = BACKPRESSURE_RETRY_AFTER_S
    unavailable_retry_after_s: float = UNAVAILABLE_RETRY_AFTER_S
    publish_timeout_s: float = DEFAULT_PUBLISH_TIMEOUT_S
    auth_cache_ttl_s: float = DEFAULT_AUTH_CACHE_TTL_S
    key_cache_ttl_s: float = DEFAULT_KEY_CACHE_TTL_S
    max_group_events: int = DEFAULT_GROUP_MAX_EVENTS
    """Most events of concurrent batches published together (one fsync or Kafka ack, one signature)."""
    migrate: bool = True
    """Apply pending database migrations at start (safe with several processes)."""
    tune_gc: bool = False
    """Set the server process's cycle collector (:mod:`sealtrail.infra.gctune`) once started."""
