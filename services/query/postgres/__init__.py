"""The query service's PostgreSQL adapters, one module per port, and the tenant scope they share."""
