"""The ledger's SQLite adapters (embedded default): one module per port (store, checkpoints,
reader) and the tree reads they share."""
