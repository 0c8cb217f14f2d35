"""Prometheus metrics of one gateway process. Labels are server, tool and decision names only:
never arguments, results, agent keys or tokens."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.calls = Counter("sealtrail_gateway_calls_total", "tools/call requests by decision and status",
                             ["server", "decision", "status"], registry=self.registry)
        self.latency = Histogram("sealtrail_gateway_call_seconds", "Time from request to answer",
                                 ["server"], registry=self.registry,
                                 buckets=(0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
        self.rate_limited = Counter("sealtrail_gateway_rate_limited_total", "Calls refused by a rate limit",
                                    ["scope"], registry=self.registry)
        self.held = Gauge("sealtrail_gateway_held_approvals", "Calls held waiting for an approver",
                          registry=self.registry)
        self.spool = Gauge("sealtrail_gateway_spool_depth", "Events waiting for the ledger (queued, or 1 more "
                           "while a spool is on disk)", registry=self.registry)
        self.ledger_up = Gauge("sealtrail_gateway_ledger_up", "1 while the ledger answers", registry=self.registry)
        self.reloads = Counter("sealtrail_gateway_reloads_total", "Configuration reloads by outcome", ["outcome"],
                               registry=self.registry)
