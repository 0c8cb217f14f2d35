"""Prometheus metrics of the witness. Labels carry HTTP statuses only, never checkpoint contents."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

REQUESTS = Counter("sealtrail_witness_add_checkpoint_total", "add-checkpoint requests answered", ["status"])
SECONDS = Histogram("sealtrail_witness_add_checkpoint_seconds", "Time to answer one add-checkpoint request",
                    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
