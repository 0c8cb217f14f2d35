"""OTLP/HTTP trace ingest on a real ``sealtrail serve``: the OpenTelemetry SDK's protobuf exporter,
Collector-style JSON bodies, bad spans beside good ones, retries, receipts and the error answers."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.trace.export import SpanExportResult

from sealtrail.cli.embedded.datadir import DataDir
from sealtrail.core.note import Ed25519Verifier
from sealtrail.core.receipt import verify_receipt
from services.ingest.otlp.mapping import span_event_id
from tests.support.dropproxy import DropProxy
from tests.support.embedded import read_rows
from tests.support.otlp import MARKER, Producer, collector_body, json_span, tool_json_span
from tests.support.serve import TENANT, Served, cli, create_key, start_serve, wait_for_checkpoint

N_CALLS = 1000


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("otlp-serve")
    running = start_serve(root / "data", logs=root)
    try:
        yield running
    finally:
        running.stop()


def _post(served: Served, body: bytes, *, token: str | None = None, media: str = "application/json",
          **headers: str) -> httpx.Response:
    sent = {"Content-Type": media, **headers}
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    return httpx.post(f"{served.url}/v1/traces", content=body, headers=sent, timeout=30)


def _tool_entries(served: Served) -> dict[str, tuple[Any, ...]]:
    rows = read_rows(DataDir(served.data_dir).db, "SELECT event_id, agent_id, server_id, tool_name, session_id, "
                     "decision, status, latency_ms FROM entries WHERE log_id = ? AND type = 'tool_call'", (TENANT,))
    return {r[0]: r[1:] for r in rows}


def _entry_count(served: Served) -> int:
    return int(read_rows(DataDir(served.data_dir).db, "SELECT count(*) FROM entries WHERE log_id = ?",
                         (TENANT,))[0][0])


def _files_holding(root: Path, needle: bytes) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def test_sdk_exporter_retries_leave_exactly_one_entry_per_tool_call(served: Served) -> None:
    """1,000 tool calls through the SDK's OTLP/HTTP protobuf exporter, with chat spans between them,
    then every span exported again (a retry after a lost answer): exactly 1,000 tool_call entries,
    one per span id, the chat spans skipped, their sub-millisecond latencies kept, `sealtrail verify`
    passes and the planted marker is in no file of the data directory and no output of the server."""
    producer = Producer(served.url, served.tokens["gateway"])
    try:
        for i in range(N_CALLS):
            producer.tool_call(i, failed=i % 10 == 0)
            if i % 5 == 0:
                producer.chat()
        producer.flush()
        again = producer.finished()
        for start in range(0, len(again), 512):  # the exporter's own retry path: the same spans again
            assert producer.exporter.export(again[start:start + 512]) is SpanExportResult.SUCCESS
        expected = producer.tool_event_ids()
    finally:
        producer.shutdown()
    assert len(expected) == N_CALLS
    auditor = create_key(served, "auditor")
    wait_for_checkpoint(served.url, auditor, TENANT, _entry_count(served))
    entries = _tool_entries(served)
    assert expected <= set(entries)
    ours = {k: v for k, v in entries.items() if k in expected}
    assert len(ours) == N_CALLS
    assert {v[:3] for v in ours.values()} == {("support-bot", "crm.internal", "lookup_customer")}
    assert sum(v[5] == "error" for v in ours.values()) == N_CALLS // 10
    assert {v[4] for v in ours.values()} == {"observe"}
    assert all(isinstance(v[6], float) and 0 < v[6] < 100 for v in ours.values())  # microsecond spans
    done = cli("verify", "--url", served.url, "--log", TENANT, "--token", auditor)
    assert done.returncode == 0, done.stderr
    assert not _files_holding(served.data_dir, MARKER.encode())
    assert MARKER not in served.stdout() + served.stderr()


def test_answers_lost_on_the_network_are_retried_by_the_exporter_and_kept_once(served: Served) -> None:
    """The exporter's own retry: the answer to every first attempt is lost after sealtrail serve
    accepted the export (a proxy closes the connection), the exporter sends the same spans again,
    and each of the 1,000 tool calls is still one entry."""
    with DropProxy(served.port, drop=lambda n: n % 2 == 0) as proxy:
        producer = Producer(proxy.url, served.tokens["gateway"])
        try:
            for i in range(N_CALLS):
                producer.tool_call(i)
            producer.flush()
            expected = producer.tool_event_ids()
        finally:
            producer.shutdown()
    assert proxy.dropped and all(b" 200 " in line for line in proxy.dropped), proxy.dropped
    assert proxy.requests >= 2 * len(proxy.dropped)
    wait_for_checkpoint(served.url, create_key(served, "auditor"), TENANT, _entry_count(served))
    assert len(expected) == N_CALLS and expected <= set(_tool_entries(served))
    rows = read_rows(DataDir(served.data_dir).db, "SELECT count(*), count(DISTINCT event_id) FROM entries "
                     "WHERE log_id = ?", (TENANT,))
    assert rows[0][0] == rows[0][1]


def test_collector_json_keeps_good_spans_and_names_each_bad_one(served: Served) -> None:
    """A Collector JSON export with bad tool spans (no tool name, ends before it starts, a week old,
    an oversized tool name and arguments, invalid ids) between good ones and a non-tool span: 200,
    partialSuccess counts and names each bad span, and every good span is in the ledger."""
    good = [tool_json_span(gen_ai__tool__name=f"tool-{i}") for i in range(3)]
    week_ago = json_span(start_ns=1_000_000_000, gen_ai__operation__name="execute_tool", gen_ai__tool__name="old")
    bad = [
        tool_json_span(gen_ai__tool__name=None),
        tool_json_span(duration_ns=-5),
        week_ago,
        tool_json_span(gen_ai__tool__name="t" * 300),
        tool_json_span(gen_ai__tool__call__arguments="x" * 70_000),
        tool_json_span(trace_id="00" * 16),
        tool_json_span(span_id="xyz"),
    ]
    http = json_span(name="GET /orders", http__request__method="GET")
    spans = [good[0], *bad[:3], http, good[1], *bad[3:], good[2]]
    resp = _post(served, json.dumps(collector_body(spans)).encode(), token=served.tokens["gateway"])
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    partial = resp.json()["partialSuccess"]
    assert partial["rejectedSpans"] == len(bad)
    message = partial["errorMessage"]
    for reason in ("without a tool name", "ends before it starts", "occurred_at", "tool_name",
                   "payload too large", "traceId", "spanId"):
        assert reason in message, reason
    assert MARKER not in message
    ids = {span_event_id(s["traceId"], s["spanId"]) for s in good}
    wait_for_checkpoint(served.url, create_key(served, "auditor"), TENANT, _entry_count(served))
    entries = _tool_entries(served)
    assert ids <= set(entries)
    assert sorted(entries[i][2] for i in ids) == ["tool-0", "tool-1", "tool-2"]


def test_gzip_json_with_receipts_on_request(served: Served) -> None:
    """A gzip JSON body with `Sealtrail-Receipts: true` is answered with a receipt per accepted
    span, each verifying with the receipt key of GET /v1/keys; the same body again gives the same
    event ids and no new entry."""
    spans = [tool_json_span(gen_ai__tool__name="receipted") for _ in range(4)]
    body = gzip.compress(json.dumps(collector_body(spans)).encode())
    token = served.tokens["gateway"]
    first = _post(served, body, token=token, **{"Content-Encoding": "gzip", "Sealtrail-Receipts": "true"})
    assert first.status_code == 200, first.text
    answer = first.json()["sealtrail"]
    assert (answer["spans"], answer["skipped"], answer["rejected"]) == (4, 0, [])
    vkeys = httpx.get(f"{served.url}/v1/keys").json()["receipt"]
    verifiers = [Ed25519Verifier.from_vkey(k["vkey"]) for k in vkeys]
    for accepted, span in zip(answer["accepted"], spans, strict=True):
        assert (accepted["trace_id"], accepted["span_id"]) == (span["traceId"], span["spanId"])
        assert verify_receipt(accepted["receipt"], verifiers).event_id == accepted["event_id"]
    auditor = create_key(served, "auditor")
    wait_for_checkpoint(served.url, auditor, TENANT, _entry_count(served))
    before = _entry_count(served)
    second = _post(served, body, token=token, **{"Content-Encoding": "gzip"})
    assert (second.status_code, second.json()) == (200, {})
    assert [a["event_id"] for a in answer["accepted"]] == [span_event_id(s["traceId"], s["spanId"]) for s in spans]
    wait_for_checkpoint(served.url, auditor, TENANT, before)
    assert _entry_count(served) == before


def test_protobuf_partial_success_is_answered_in_protobuf(served: Served) -> None:
    """A protobuf request with a bad tool span gets a protobuf ExportTraceServiceResponse."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

    attrs = [KeyValue(key="gen_ai.operation.name", value=AnyValue(string_value="execute_tool"))]
    bad = Span(trace_id=b"\x01" * 16, span_id=b"\x02" * 4, name="x", start_time_unix_nano=1, end_time_unix_nano=2,
               attributes=attrs)
    request = ExportTraceServiceRequest(resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=[bad])])])
    resp = _post(served, request.SerializeToString(), token=served.tokens["gateway"], media="application/x-protobuf")
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/x-protobuf"
    answer = ExportTraceServiceResponse.FromString(resp.content)
    assert answer.partial_success.rejected_spans == 1
    assert "spanId" in answer.partial_success.error_message


@pytest.mark.parametrize(("case", "status"), [
    ("no key", 401), ("auditor key", 403), ("text body", 415), ("brotli", 415), ("not protobuf", 400),
    ("not json", 400), ("too large", 413)])
def test_failures_answer_with_a_status_in_the_request_encoding(served: Served, case: str, status: int) -> None:
    """401/403/415/400/413 as OTLP/HTTP says: the status, and a google.rpc.Status body in the
    request's encoding (JSON here, protobuf for protobuf requests)."""
    token = served.tokens["gateway"]
    media, body, extra = "application/json", b'{"resourceSpans": []}', {}
    if case == "no key":
        token = ""
    elif case == "auditor key":
        token = create_key(served, "auditor")
    elif case == "text body":
        media = "text/plain"
    elif case == "brotli":
        extra = {"Content-Encoding": "br"}
    elif case == "not protobuf":
        media, body = "application/x-protobuf", b"\x0a\xff\xff\xff"
    elif case == "not json":
        body = b"{nope"
    elif case == "too large":
        body = b" " * (8 * 1024 * 1024 + 1)
    resp = _post(served, body, token=token or None, media=media, **extra)
    assert resp.status_code == status, resp.text
    if media == "application/x-protobuf":
        assert resp.headers["content-type"] == "application/x-protobuf" and resp.content.startswith(b"\x08")
    else:
        assert resp.json()["message"]
    if status == 401:
        assert resp.headers["www-authenticate"].startswith("Bearer")
