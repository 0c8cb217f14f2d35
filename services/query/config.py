"""The query service's limits and tunables (its dependencies come from :class:`Settings`)."""

from __future__ import annotations

from dataclasses import dataclass

from sealtrail.core.quorum import WitnessPolicy
from sealtrail.infra.apikeys import DEFAULT_AUTH_CACHE_TTL_S
from sealtrail.infra.kafka import DEFAULT_PUBLISH_TIMEOUT_S
from sealtrail.infra.keycache import DEFAULT_KEY_CACHE_TTL_S

DEFAULT_PAGE = 100
"""Calls per page of ``GET /v1/calls`` and ``GET /v1/sessions/{id}`` unless ``limit`` says otherwise."""
MAX_PAGE = 1000
"""Most calls, entries, checkpoints or exported entries one response holds."""
DEFAULT_SHRED_INTERVAL_S = 3600.0
"""How often the query service runs the retention shredder (0 turns it off in this process)."""
WRITER_ID = "sealtrail.query"
"""The ``gateway_id`` of the events the query service writes (access, erasure, retention)."""


@dataclass(frozen=True, slots=True)
class QueryOptions:
    """Limits of one query process. The defaults are the documented production values."""

    default_page: int = DEFAULT_PAGE
    max_page: int = MAX_PAGE
    auth_cache_ttl_s: float = DEFAULT_AUTH_CACHE_TTL_S
    key_cache_ttl_s: float = DEFAULT_KEY_CACHE_TTL_S
    """Also the longest any Sealtrail process caches a data key: an erasure's ``caches_clear_by``
    is its time plus this. It MUST be at least every ingest process's key-cache TTL."""
    publish_timeout_s: float = DEFAULT_PUBLISH_TIMEOUT_S
    shred_interval_s: float = DEFAULT_SHRED_INTERVAL_S
    migrate: bool = True
    """Apply pending database migrations at start (safe with several processes)."""
    witnesses: WitnessPolicy | None = None
    """The log's witnesses and quorum (``SEALTRAIL_WITNESS_CONFIG``): the latest checkpoint is then
    answered with ``Sealtrail-Witness-Cosignatures`` and ``Sealtrail-Witness-Quorum`` headers."""
