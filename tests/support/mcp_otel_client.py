"""An MCP client on the ``mcp`` SDK with OpenTelemetry export to Sealtrail: the client side.

Run as ``python -m tests.support.mcp_otel_client N``: starts :mod:`tests.support.mcp_otel_server`
over stdio (without telemetry), makes N ``tools/call`` requests and exits, flushing its spans. The
exporter is configured from the standard ``OTEL_*`` variables; what Sealtrail receives are the
``mcp`` SDK's own client spans (``MCP send tools/call {tool}``).
"""

from __future__ import annotations

import asyncio
import sys

from mcp import Client, StdioServerParameters
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor


async def calls(n: int) -> None:
    params = StdioServerParameters(command=sys.executable, args=["-m", "tests.support.mcp_otel_server", "--no-export"])
    async with Client(params, mode="legacy", cache=None) as client:
        for i in range(n):
            if i % 2:
                await client.call_tool("add", {"a": i, "b": 2})
            else:
                await client.call_tool("lookup_customer", {"email": f"user{i}@example.com"})


def main() -> None:
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(), schedule_delay_millis=200))
    trace.set_tracer_provider(provider)
    try:
        asyncio.run(calls(int(sys.argv[1])))
    finally:
        provider.shutdown()


if __name__ == "__main__":
    main()
