"""The query service's SQLite adapters (embedded default), one module per port."""
