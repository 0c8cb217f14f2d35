"""Turning the spans of one export into events through ingest's own pipeline.

Tool-call spans are mapped (:mod:`.mapping`) and handed to :meth:`IngestService.submit` in chunks
of at most ``max_batch_events``, exactly as batches posted to ``/v1/events``: the same
validation, sealing, receipts, back-pressure and acknowledgement rule. Other spans are counted
and skipped. A chunk refused as a whole (429, 503) fails the export, which the exporter retries;
the spans of chunks already accepted then come again with the same event ids and the ledger keeps
one entry for each.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sealtrail.core.validation import Rejection
from sealtrail.infra.auth import Principal
from services.ingest.otlp.mapping import MappedSpan, SpanRefused, SubjectRule, is_tool_call, map_span
from services.ingest.otlp.spans import Span
from services.ingest.sealer import AcceptedEvent
from services.ingest.service import IngestService

MAX_MESSAGES = 10
"""Refusals spelled out in one ``partial_success.error_message``; the rest are counted."""


@dataclass(frozen=True, slots=True)
class SpanReceipt:
    trace_id: str
    span_id: str
    accepted: AcceptedEvent


@dataclass(frozen=True, slots=True)
class SpanRejection:
    position: str
    trace_id: str
    span_id: str
    reason: str

    def describe(self) -> str:
        ids = f" (span {self.span_id})" if self.span_id else ""
        return f"{self.position}{ids}: {self.reason}"


@dataclass(slots=True)
class ExportResult:
    """What became of each span of one export."""

    spans: int = 0
    skipped: int = 0
    accepted: list[SpanReceipt] = field(default_factory=list)
    rejected: list[SpanRejection] = field(default_factory=list)

    def message(self) -> str:
        """The ``partial_success.error_message``: why spans were rejected (empty if none was)."""
        if not self.rejected:
            return ""
        shown = "; ".join(r.describe() for r in self.rejected[:MAX_MESSAGES])
        more = len(self.rejected) - MAX_MESSAGES
        return (f"{len(self.rejected)} tool-call span(s) rejected: {shown}"
                + (f"; and {more} more" if more > 0 else ""))


class TraceReceiver:
    """Receives the spans of OTLP exports for one ingest service."""

    def __init__(self, *, service: IngestService, subject_rules: tuple[SubjectRule, ...]) -> None:
        self.service = service
        self.subject_rules = subject_rules

    async def receive(self, principal: Principal, spans: Sequence[Span]) -> ExportResult:
        result = ExportResult(spans=len(spans))
        mapped: list[tuple[Span, MappedSpan]] = []
        for span in spans:
            if not is_tool_call(span):
                result.skipped += 1
                continue
            try:
                mapped.append((span, map_span(span, self.subject_rules)))
            except SpanRefused as e:
                result.rejected.append(SpanRejection(span.position, span.trace_id, span.span_id, str(e)))
        size = self.service.options.max_batch_events
        for start in range(0, len(mapped), size):
            await self._submit(principal, mapped[start:start + size], result)
        return result

    async def _submit(self, principal: Principal, chunk: list[tuple[Span, MappedSpan]], result: ExportResult) -> None:
        batch = await self.service.submit(principal, [m.event for _, m in chunk])
        by_id = {m.event["event_id"]: span for span, m in chunk}
        for accepted in batch.accepted:
            span = by_id[accepted.event_id]
            result.accepted.append(SpanReceipt(span.trace_id, span.span_id, accepted))
        for rejection in batch.rejected:
            span, m = chunk[rejection.index]
            result.rejected.append(SpanRejection(span.position, span.trace_id, span.span_id,
                                                 _reason(rejection, m)))


def _reason(rejection: Rejection, mapped: MappedSpan) -> str:
    """A validation rejection in the span's terms: the event field and the OTLP field it came from."""
    parts = rejection.pointer.split("/")
    field_name = parts[3] if len(parts) > 3 else ""
    source = mapped.sources.get(field_name)
    return f"{rejection.detail} (from {source})" if source else rejection.detail
