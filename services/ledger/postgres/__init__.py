"""The ledger's PostgreSQL adapters: one module per port (store, checkpoints, reader) and the tree reads they share."""
