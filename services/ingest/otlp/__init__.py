"""OTLP/HTTP trace ingest: reading export requests, mapping tool-call spans to events, answering."""
