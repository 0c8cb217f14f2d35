"""Prometheus metrics of the ledger. Labels carry log ids and reasons, never payload data."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

ENTRIES = Counter("sealtrail_ledger_entries_total", "Entries appended", ["log"])
DUPLICATES = Counter("sealtrail_ledger_duplicates_total", "Records whose event id was already logged")
DEAD_LETTERS = Counter("sealtrail_ledger_dead_letters_total", "Records sent to the dead-letter topic",
                       ["reason"])
_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
BATCH_SECONDS = Histogram("sealtrail_ledger_batch_seconds",
                          "Time to sequence and commit one poll (its own work: not waiting for the previous commit)",
                          buckets=_SECONDS)
COMMIT_SECONDS = Histogram("sealtrail_ledger_commit_seconds", "Time of one poll's database transaction",
                           buckets=_SECONDS)
BATCH_SIZE = Histogram("sealtrail_ledger_batch_records", "Records per committed poll",
                       buckets=(1, 10, 50, 100, 500, 1000, 2500, 5000, 10000))
CONSUMER_LAG = Gauge("sealtrail_ledger_consumer_lag", "Records behind the partition's end",
                     ["partition"])
DUPLICATE_RETRIES = Counter("sealtrail_ledger_duplicate_retries_total",
                            "Commits refused for an already logged event id, then sequenced again")
CONFLICTS = Counter("sealtrail_ledger_write_conflicts_total", "Commits refused because another writer won")
CHECKPOINTS = Counter("sealtrail_ledger_checkpoints_total", "Checkpoints signed", ["log"])
CHECKPOINT_DELAY = Histogram(
    "sealtrail_ledger_checkpoint_delay_seconds",
    "Per signed checkpoint: seconds from ingest receiving the first entry it newly covers to its signature",
    buckets=(0.25, 0.5, 1, 1.5, 2, 3, 5, 10, 30, 60, 300))
CHECKPOINT_REFUSED = Counter("sealtrail_ledger_checkpoint_refused_total",
                             "Checkpoints not signed because consistency failed", ["log"])
WITNESS_COSIGNATURES = Counter("sealtrail_ledger_witness_cosignatures_total",
                               "Verified witness cosignatures stored", ["witness"])
WITNESS_FAILURES = Counter("sealtrail_ledger_witness_failures_total",
                           "add-checkpoint attempts that a witness refused or failed", ["witness"])
WITNESS_LAG_ENTRIES = Gauge("sealtrail_ledger_witness_lag_entries",
                            "Entries by which the latest witnessed checkpoint trails the latest signed one", ["log"])
WITNESS_LAG_SECONDS = Gauge("sealtrail_ledger_witness_lag_seconds",
                            "Seconds since the oldest signed checkpoint not yet witnessed was signed (0: none)",
                            ["log"])
