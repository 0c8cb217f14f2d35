"""Ingest's Prometheus metrics. Label values come from fixed sets: never payload data or tokens."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

BATCH_BUCKETS = (1, 5, 10, 50, 100, 250, 500, 750, 1000)
GROUP_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class IngestMetrics:
    """One registry per app, so several apps (tests) never share counters."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.accepted = Counter("sealtrail_ingest_events_accepted",
                                "Events accepted and acknowledged by Kafka", registry=r)
        self.rejected = Counter("sealtrail_ingest_events_rejected", "Events rejected, by problem type",
                                ["reason"], registry=r)
        self.requests = Counter("sealtrail_ingest_requests", "Requests to POST /v1/events, by status",
                                ["status"], registry=r)
        self.batch_events = Histogram("sealtrail_ingest_batch_events", "Events per request",
                                      buckets=BATCH_BUCKETS, registry=r)
        self.produce_seconds = Histogram("sealtrail_ingest_produce_seconds",
                                         "Time from publishing a batch to Kafka's acknowledgement",
                                         buckets=LATENCY_BUCKETS, registry=r)
        self.request_seconds = Histogram("sealtrail_ingest_request_seconds", "POST /v1/events latency",
                                         buckets=LATENCY_BUCKETS, registry=r)
        self.otlp_requests = Counter("sealtrail_ingest_otlp_requests", "Requests to POST /v1/traces, by status",
                                     ["status"], registry=r)
        self.otlp_spans = Counter("sealtrail_ingest_otlp_spans",
                                  "Spans received on POST /v1/traces, by outcome (accepted, rejected, skipped)",
                                  ["outcome"], registry=r)
        self.group_batches = Histogram("sealtrail_ingest_group_batches",
                                       "Batches published together in one group (one publish, one signature)",
                                       buckets=GROUP_BUCKETS, registry=r)
        self.in_flight = Gauge("sealtrail_ingest_in_flight_batches", "Batches being sealed or published",
                               registry=r)
        self._requests_by_status: dict[int, Counter] = {}

    def request_done(self, status: int, seconds: float) -> None:
        """Count one POST /v1/events answered ``status`` after ``seconds`` (the labelled child is
        looked up once per status, not on every request)."""
        counter = self._requests_by_status.get(status)
        if counter is None:
            counter = self._requests_by_status[status] = self.requests.labels(status=str(status))
        counter.inc()
        self.request_seconds.observe(seconds)

    def render(self) -> bytes:
        return bytes(generate_latest(self.registry))
