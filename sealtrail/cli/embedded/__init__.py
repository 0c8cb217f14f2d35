"""The embedded default's wiring: ingest, ledger, projector and query in one process (``sealtrail serve``)."""
