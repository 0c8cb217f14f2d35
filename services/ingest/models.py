"""Response models of the ingest API, for OpenAPI. Handlers answer with orjson directly."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from sealtrail.core.receipt import RECEIPT_FORMAT


class EventBatch(BaseModel):
    """The request body of ``POST /v1/events``; each event is validated on its own."""

    events: list[dict[str, Any]] = Field(
        max_length=1000, description="v1 events (see schemas/); each may carry `payload` and `subjects`"
    )


class AcceptedItem(BaseModel):
    event_id: str
    log: str = Field(description="the log id (= tenant id) the event will appear in")
    receipt: str = Field(description="the event's inclusion proof under its batch's note, signed once per batch "
                                     "by the ingest receipt key (docs/ingest.md, Receipts)")


class RejectedItem(BaseModel):
    index: int = Field(description="position in the batch")
    event_id: str | None
    type: str = Field(description="RFC 9457 problem type URI")
    title: str
    detail: str
    pointer: str = Field(description="RFC 6901 JSON pointer into the request body")


class BatchResult(BaseModel):
    """202: at least one event was accepted and acknowledged by Kafka."""

    accepted: list[AcceptedItem]
    rejected: list[RejectedItem]


class Problem(BaseModel):
    """RFC 9457 problem details (``application/problem+json``)."""

    type: str
    title: str
    status: int
    detail: str
    pointer: str | None = None


class BatchRejected(Problem):
    """422: no event of the batch was accepted."""

    accepted: list[AcceptedItem]
    rejected: list[RejectedItem]


class ReceiptKey(BaseModel):
    vkey: str = Field(description="C2SP verifier key string (name+hexid+base64)")
    purpose: str = "receipt"


class Keys(BaseModel):
    receipt: list[ReceiptKey]
    receipt_format: str = RECEIPT_FORMAT
