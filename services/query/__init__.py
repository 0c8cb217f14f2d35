"""The query service: investigations, analytics, proofs, data-subject requests, and the projector
that keeps its read models (docs/query.md).

It MUST NOT import ``services.ingest``; of ``services.ledger`` it imports only the published
``services.ledger.reader``.
"""
