"""The ingest service: authenticates gateways, validates and seals events, publishes them to Kafka.

It MUST NOT import ``services.ledger`` or ``services.query``.
"""

from __future__ import annotations

from services.ingest.app import IngestParts, create_app
from services.ingest.config import IngestOptions

__all__ = ["IngestOptions", "IngestParts", "create_app"]
