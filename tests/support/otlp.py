"""OTLP producers for tests and benchmarks: the OpenTelemetry SDK with its OTLP/HTTP protobuf
exporter, and JSON bodies as an OpenTelemetry Collector writes them."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource as PbResource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from services.ingest.otlp.mapping import span_event_id

MARKER = "PLANTED-OTLP-MARKER-7f3a"
"""Planted in arguments and results: must never appear in clear outside ingest's memory."""


def exporter(url: str, token: str, *, timeout: float = 30) -> OTLPSpanExporter:
    return OTLPSpanExporter(endpoint=f"{url}/v1/traces", headers={"Authorization": f"Bearer {token}"},
                            timeout=timeout)


class Producer:
    """An SDK tracer provider exporting to Sealtrail, and keeping a copy of every finished span."""

    def __init__(self, url: str, token: str, *, service: str = "support-agent") -> None:
        self.exporter = exporter(url, token)
        self.kept = InMemorySpanExporter()
        self.provider = TracerProvider(resource=Resource.create({"service.name": service}))
        self.provider.add_span_processor(BatchSpanProcessor(self.exporter, max_export_batch_size=512,
                                                            schedule_delay_millis=50))
        self.provider.add_span_processor(SimpleSpanProcessor(self.kept))
        self.tracer = self.provider.get_tracer("sealtrail-tests")

    def tool_call(self, i: int, *, failed: bool = False) -> None:
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup_customer",
            "gen_ai.agent.name": "support-bot", "server.address": "crm.internal", "mcp.session.id": f"s-{i % 7}",
            "gen_ai.tool.call.arguments": f'{{"n": {i}, "note": "{MARKER}"}}',
            "gen_ai.tool.call.result": f'{{"found": "{MARKER}"}}', "enduser.id": f"user{i % 13}@example.com",
        }
        if failed:
            attributes["error.type"] = "tool_error"
        with self.tracer.start_as_current_span("execute_tool lookup_customer", attributes=attributes):
            pass

    def chat(self) -> None:
        with self.tracer.start_as_current_span("chat gpt", attributes={"gen_ai.operation.name": "chat"}):
            pass

    def flush(self) -> None:
        assert self.provider.force_flush(60_000), "the exporter did not flush in time"

    def finished(self) -> Sequence[ReadableSpan]:
        return self.kept.get_finished_spans()

    def tool_event_ids(self) -> set[str]:
        return {span_event_id(f"{s.context.trace_id:032x}", f"{s.context.span_id:016x}")
                for s in self.finished() if (s.attributes or {}).get("gen_ai.operation.name") == "execute_tool"}

    def shutdown(self) -> None:
        self.provider.shutdown()


def attr(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    return {"key": key, "value": {"stringValue": value}}


def json_span(*, name: str = "execute_tool lookup", trace_id: str | None = None, span_id: str | None = None,
              start_ns: int | None = None, duration_ns: int = 2_500_000, **attributes: Any) -> dict[str, Any]:
    """One span in OTLP JSON (hex ids, int64 times as strings) with ``attributes`` (dots as ``__``)."""
    start = time.time_ns() - 1_000_000_000 if start_ns is None else start_ns
    return {
        "traceId": trace_id or os.urandom(16).hex(), "spanId": span_id or os.urandom(8).hex(),
        "parentSpanId": "", "name": name, "kind": 1,
        "startTimeUnixNano": str(start), "endTimeUnixNano": str(start + duration_ns),
        "attributes": [attr(k.replace("__", "."), v) for k, v in attributes.items()],
        "status": {},
    }


def tool_json_span(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {"gen_ai__operation__name": "execute_tool", "gen_ai__tool__name": "lookup",
                              "gen_ai__tool__call__arguments": f'{{"q": "{MARKER}"}}'}
    fields.update(overrides)
    return json_span(**{k: v for k, v in fields.items() if v is not None})


def collector_body(spans: list[dict[str, Any]], *, service: str = "collector-agent") -> dict[str, Any]:
    """An ExportTraceServiceRequest as the Collector's otlphttp exporter writes it in JSON."""
    return {"resourceSpans": [{
        "resource": {"attributes": [attr("service.name", service)]},
        "scopeSpans": [{"scope": {"name": "collector-test", "version": "1"}, "spans": spans}],
    }]}


def protobuf_body(count: int, *, tool: str = "lookup", service: str = "proto-agent") -> bytes:
    """A protobuf ExportTraceServiceRequest of ``count`` execute_tool spans with random ids."""
    now = time.time_ns() - 1_000_000_000

    def kv(key: str, value: str) -> KeyValue:
        return KeyValue(key=key, value=AnyValue(string_value=value))

    spans = [PbSpan(trace_id=os.urandom(16), span_id=os.urandom(8), name=f"execute_tool {tool}",
                    kind=PbSpan.SPAN_KIND_INTERNAL, start_time_unix_nano=now, end_time_unix_nano=now + 1_200_000,
                    attributes=[kv("gen_ai.operation.name", "execute_tool"), kv("gen_ai.tool.name", tool),
                                kv("gen_ai.tool.call.arguments", f'{{"i": {i}}}')])
             for i in range(count)]
    resource = PbResource(attributes=[kv("service.name", service)])
    return ExportTraceServiceRequest(resource_spans=[ResourceSpans(
        resource=resource, scope_spans=[ScopeSpans(spans=spans)])]).SerializeToString()
