"""An MCP server on the ``mcp`` SDK over stdio, with OpenTelemetry export to Sealtrail.

Run as ``python -m tests.support.mcp_otel_server``. The OpenTelemetry SDK is configured the way an
operator would, from the standard variables (``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``,
``OTEL_EXPORTER_OTLP_TRACES_HEADERS``, ``OTEL_SERVICE_NAME``, ...); the ``mcp`` SDK's own
``tools/call`` server spans are what get exported. With ``--twice`` every span is exported by two
independent pipelines (two batch processors, two exporters), as when spans reach Sealtrail both
directly and through a Collector: every span arrives twice. The tracer provider is shut down
(flushing every span) when the client closes stdin, or stops it with SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import sys

from mcp.server.mcpserver import MCPServer
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

server: MCPServer = MCPServer("crm-tools", version="1")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def lookup_customer(email: str) -> dict[str, str]:
    """A customer record by e-mail address (made up from the address)."""
    return {"email": email, "name": email.split("@")[0].title()}


@server.tool()
def refuse(reason: str) -> str:
    """Always fails (a tool error)."""
    raise ValueError(f"refused: {reason}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--twice", action="store_true", help="export every span through two pipelines")
    parser.add_argument("--no-export", action="store_true", help="no OpenTelemetry at all")
    args = parser.parse_args()
    if args.no_export:
        server.run()
        return
    provider = TracerProvider()  # resource from OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES
    for _ in range(2 if args.twice else 1):
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(), schedule_delay_millis=200))
    trace.set_tracer_provider(provider)
    # The client stops a server that lingers with SIGTERM: still flush the spans on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.run()
    finally:
        provider.shutdown()


if __name__ == "__main__":
    main()
