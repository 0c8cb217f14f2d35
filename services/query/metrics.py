"""The query service's Prometheus metrics. Labels come from fixed sets (route templates, status
codes, actions): never a subject, a payload, a token or a tenant's search terms."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class QueryMetrics:
    """One registry per app, so several apps (tests) never share counters."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("sealtrail_query_requests", "Requests, by route template and status",
                                ["route", "status"], registry=r)
        self.request_seconds = Histogram("sealtrail_query_request_seconds", "Request latency, by route",
                                         ["route"], buckets=LATENCY_BUCKETS, registry=r)
        self.access_events = Counter("sealtrail_query_access_events",
                                     "Access events written, by action (reveal, export)", ["action"],
                                     registry=r)
        self.payloads_unavailable = Counter("sealtrail_query_payloads_unavailable",
                                            "Payloads asked for but not openable, by state", ["state"],
                                            registry=r)
        self.erasures = Counter("sealtrail_query_erasures", "Subject erasures completed", registry=r)
        self.erasures_refused = Counter("sealtrail_query_erasures_refused",
                                        "Erasures refused because of a legal hold", registry=r)
        self.payloads_deleted = Counter("sealtrail_query_payloads_deleted",
                                        "Ciphertexts deleted, by cause (erasure, retention)", ["cause"],
                                        registry=r)
        self.integrity = Counter("sealtrail_query_integrity_disagreements",
                                 "Entries whose stored copies (columns, leaf, read models) disagree with their "
                                 "signed bytes, by route and whether the row was withheld",
                                 ["route", "withheld"], registry=r)
        self.console_sign_ins = Counter("sealtrail_query_console_sign_ins",
                                        "Console sign-ins, by outcome (ok, failed, refused: a role without "
                                        "console pages, limited: too many failures)", ["outcome"], registry=r)
        self.periods_expired = Counter("sealtrail_query_periods_expired",
                                       "Period keys expired by the retention shredder", registry=r)

    def render(self) -> bytes:
        return bytes(generate_latest(self.registry))
