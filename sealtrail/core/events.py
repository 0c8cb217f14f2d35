"""The v1 event models: what a gateway submits, mirrored from ``schemas/<type>.v1.schema.json``.

A submitted event is its header fields, an optional ``payload`` (anything personal or sensitive:
arguments, results, error text, end-user and approver identity, free text) and optional
``subjects`` (the data subjects the payload concerns, e.g. ``user:alice@example.com``). The
payload is sealed at ingest; the subjects choose the sealing keys; neither enters the header.

The models are frozen, forbid unknown fields, coerce nothing (``"5"`` is not ``5``, ``5.0`` is
not ``5``) and reject an explicit ``null`` for an optional field: absent fields are omitted.
Fields the server sets (:data:`SERVER_SET_FIELDS`) are unknown fields here, so a client can never
supply them. ``tests/unit/test_schema_agreement.py`` proves the models and the schemas agree.
"""

from __future__ import annotations

import functools
import unicodedata
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from sealtrail.core.fields import (
    MAX_TOOLS,
    Code,
    Count,
    Currency,
    DefHash,
    EventId,
    HeaderStr,
    KeyId,
    KeyIds,
    Latency,
    Payload,
    Period,
    PositiveCount,
    SpanId,
    Subjects,
    Timestamp,
    TraceId,
    format_timestamp,
    has_control_character,
    parse_timestamp,
)
from sealtrail.errors import InvalidInputError

SERVER_SET_FIELDS = frozenset(
    {"tenant", "gateway_id", "received_at", "key_ids", "payload_digest", "payload_size", "index"}
)
"""Header fields only the server writes; a submitted event carrying one is rejected."""
SEALED_FIELDS = frozenset({"payload", "subjects"})
"""Fields of a submitted event that never enter the header."""


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    @model_validator(mode="before")
    @classmethod
    def _no_null(cls, data: object) -> object:
        # One check per event rather than one Python call per field. validate_batch finds a null
        # first and points at its field; called directly, the model names the field in the text.
        if isinstance(data, dict) and None in data.values():
            known = accepted_keys(cls)
            field = next((key for key, value in data.items() if value is None and key in known), None)
            if field is None:
                return data  # a null only in unknown fields: refused as unknown fields
            raise PydanticCustomError("null", "'{field}' must not be null; omit the field instead",
                                      {"field": str(field)})
        return data


@functools.cache
def accepted_keys(model: type[BaseModel]) -> frozenset[str]:
    """The member names a model accepts: its field names, with the alias where one is set."""
    return frozenset(f.alias or name for name, f in model.model_fields.items())


def _dependent(model: _Strict, field: str, needs: str) -> None:
    fields = model.model_fields_set
    if field in fields and needs not in fields:
        raise PydanticCustomError(
            "dependent_required", "{field} is required when {other} is present",
            {"field": needs, "other": field},
        )


class _Header(_Strict):
    """Fields every event carries."""

    event_id: EventId
    occurred_at: Timestamp

    @property
    def occurred_at_datetime(self) -> datetime:
        """``occurred_at`` as an aware UTC datetime."""
        return parse_timestamp(self.occurred_at)


class _Sealable(_Header):
    """An event that may carry a payload and name the data subjects it concerns."""

    payload: Payload | None = None
    subjects: Subjects | None = None


class ToolCallEvent(_Sealable):
    """One tool call, including denied and step-up-held ones."""

    type: Literal["tool_call"]
    schema_id: Literal["sealtrail.tool_call/v1"] | None = Field(default=None, alias="schema")
    agent_id: HeaderStr
    session_id: HeaderStr | None = None
    server_id: HeaderStr
    tool_name: HeaderStr
    tool_tier: Literal["read", "write", "destructive", "unknown"] | None = None
    tool_def_hash: DefHash | None = None
    decision: Literal["allow", "deny", "step_up", "observe"]
    policy_id: HeaderStr | None = None
    policy_version: HeaderStr | None = None
    status: Literal["ok", "error", "denied", "pending", "timeout"]
    error_type: HeaderStr | None = None
    latency_ms: Latency | None = None
    cost_micros: Count | None = None
    currency: Currency | None = None
    trace_id: TraceId | None = None
    span_id: SpanId | None = None

    @model_validator(mode="after")
    def _pairs(self) -> ToolCallEvent:
        if self.cost_micros is None and self.currency is None and self.span_id is None:
            return self
        _dependent(self, "cost_micros", "currency")
        _dependent(self, "currency", "cost_micros")
        _dependent(self, "span_id", "trace_id")
        return self


class ApprovalEvent(_Sealable):
    """A step-up request granted or refused; the approver's identity goes in the payload."""

    type: Literal["approval"]
    schema_id: Literal["sealtrail.approval/v1"] | None = Field(default=None, alias="schema")
    approval_id: HeaderStr
    call_event_id: EventId
    decision: Literal["granted", "refused"]
    agent_id: HeaderStr | None = None
    session_id: HeaderStr | None = None
    server_id: HeaderStr | None = None
    tool_name: HeaderStr | None = None
    policy_id: HeaderStr | None = None
    policy_version: HeaderStr | None = None
    wait_ms: Count | None = None
    trace_id: TraceId | None = None
    span_id: SpanId | None = None

    @model_validator(mode="after")
    def _pairs(self) -> ApprovalEvent:
        _dependent(self, "span_id", "trace_id")
        return self


class RateLimitEvent(_Sealable):
    """A rate limit was reached: ``observed`` calls against ``limit`` per ``window_s`` seconds."""

    type: Literal["rate_limit"]
    schema_id: Literal["sealtrail.rate_limit/v1"] | None = Field(default=None, alias="schema")
    limit_id: HeaderStr
    window_s: PositiveCount
    limit: Count
    observed: Count
    scope: Literal["tenant", "agent", "session", "server", "tool"] | None = None
    agent_id: HeaderStr | None = None
    session_id: HeaderStr | None = None
    server_id: HeaderStr | None = None
    tool_name: HeaderStr | None = None


class HealthCheckEvent(_Sealable):
    """The result of probing one tool server."""

    type: Literal["health_check"]
    schema_id: Literal["sealtrail.health_check/v1"] | None = Field(default=None, alias="schema")
    server_id: HeaderStr
    status: Literal["healthy", "degraded", "unhealthy"]
    latency_ms: Latency | None = None
    error_type: HeaderStr | None = None


class ToolRef(_Strict):
    """One tool of a capability snapshot: its name and the hash of its definition."""

    name: HeaderStr
    def_hash: DefHash


def _unique_tools(tools: list[ToolRef]) -> list[ToolRef]:
    if len({(tool.name, tool.def_hash) for tool in tools}) != len(tools):
        raise PydanticCustomError("unique_items", "must not repeat an item")
    return tools


class ToolListEvent(_Sealable):
    """A capability-discovery snapshot: the tools a server offered and a hash of each definition."""

    type: Literal["tool_list"]
    schema_id: Literal["sealtrail.tool_list/v1"] | None = Field(default=None, alias="schema")
    server_id: HeaderStr
    tools: Annotated[list[ToolRef], Field(max_length=MAX_TOOLS), AfterValidator(_unique_tools)]
    agent_id: HeaderStr | None = None
    session_id: HeaderStr | None = None


class ServerStatusEvent(_Sealable):
    """A tool server became active or inactive; any free-text reason goes in the payload."""

    type: Literal["server_status"]
    schema_id: Literal["sealtrail.server_status/v1"] | None = Field(default=None, alias="schema")
    server_id: HeaderStr
    state: Literal["active", "inactive"]


class CredentialRotationEvent(_Sealable):
    """A server credential was rotated; ``credential_id`` is a non-secret label, never the secret."""

    type: Literal["credential_rotation"]
    schema_id: Literal["sealtrail.credential_rotation/v1"] | None = Field(default=None, alias="schema")
    server_id: HeaderStr
    credential_id: HeaderStr
    reason: Literal["scheduled", "suspected_compromise", "manual"] | None = None
    expires_at: Timestamp | None = None


class AccessEvent(_Sealable):
    """Written by Sealtrail: a payload was revealed or exported. Free-text purpose goes in the payload."""

    type: Literal["access"]
    schema_id: Literal["sealtrail.access/v1"] | None = Field(default=None, alias="schema")
    accessor_key_id: HeaderStr
    purpose_code: Code
    target_event_id: EventId
    action: Literal["reveal", "export"]
    export_ref: HeaderStr | None = None


class ErasureEvent(_Header):
    """Written by Sealtrail: a subject was erased. Identifiers and counts only, never personal data."""

    type: Literal["erasure"]
    schema_id: Literal["sealtrail.erasure/v1"] | None = Field(default=None, alias="schema")
    request_ref: HeaderStr
    legal_basis: Code
    erased_key_ids: KeyIds
    payloads_deleted: Count
    index_rows_deleted: Count
    caches_clear_by: Timestamp | None = None


class RetentionEvent(_Header):
    """Written by Sealtrail: the period key of a UTC month expired, shredding that month's payloads."""

    type: Literal["retention"]
    schema_id: Literal["sealtrail.retention/v1"] | None = Field(default=None, alias="schema")
    period: Period
    period_key_id: KeyId
    payloads_deleted: Count


EventModel = (
    ToolCallEvent | ApprovalEvent | RateLimitEvent | HealthCheckEvent | ToolListEvent
    | ServerStatusEvent | CredentialRotationEvent | AccessEvent | ErasureEvent | RetentionEvent
)
Event = Annotated[EventModel, Field(discriminator="type")]
"""Any v1 event, discriminated on ``type``."""

EVENT_MODELS: dict[str, type[EventModel]] = {
    "tool_call": ToolCallEvent,
    "approval": ApprovalEvent,
    "rate_limit": RateLimitEvent,
    "health_check": HealthCheckEvent,
    "tool_list": ToolListEvent,
    "server_status": ServerStatusEvent,
    "credential_rotation": CredentialRotationEvent,
    "access": AccessEvent,
    "erasure": ErasureEvent,
    "retention": RetentionEvent,
}
SYSTEM_EVENT_TYPES = frozenset({"access", "erasure", "retention"})
"""Types only Sealtrail itself writes; ingest refuses them from gateways."""
CLIENT_EVENT_TYPES = frozenset(EVENT_MODELS) - SYSTEM_EVENT_TYPES


def header_dict(
    event: EventModel,
    *,
    tenant: str,
    gateway_id: str,
    received_at: datetime,
    sealed: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The header that goes into the log entry: the event's header fields as sent, plus server fields.

    ``payload`` and ``subjects`` are left out. ``received_at`` is written by
    :func:`~sealtrail.core.fields.format_timestamp`. ``sealed`` holds the sealing fields
    (``key_ids``, ``payload_digest``, ``payload_size``, see ``SealedPayload.header_fields``) when
    the event has a payload. The ledger adds ``index``. Nothing the sender wrote is rewritten.
    """
    header = event.model_dump(by_alias=True, exclude_none=True, exclude=set(SEALED_FIELDS))
    header["tenant"] = tenant
    header["gateway_id"] = gateway_id
    header["received_at"] = format_timestamp(received_at)
    if sealed:
        header.update(sealed)
    return header


def normalise_subject(subject_id: str) -> str:
    """Return the normal form of a data-subject id, so that one person maps to one key.

    The rule, applied in this order:

    1. Unicode NFC;
    2. strip leading and trailing whitespace (``str.strip``);
    3. split at the first ``:`` into scheme and identifier; both must be non-empty;
    4. lowercase the scheme;
    5. if the identifier contains ``@``, lowercase the part after the last ``@`` (an e-mail
       domain is case-insensitive; the local part is not, so it is kept as written).

    Nothing else changes: ``user:Alice@Example.COM `` becomes ``user:Alice@example.com``.
    Raises :class:`InvalidInputError` (without echoing the id, which is personal) when the id has
    no scheme, no identifier or a control character.
    """
    text = (subject_id if subject_id.isascii() else unicodedata.normalize("NFC", subject_id)).strip()
    scheme, colon, identifier = text.partition(":")
    if not colon or not scheme or not identifier:
        raise InvalidInputError("subject id must look like 'scheme:identifier'")
    if has_control_character(text):
        raise InvalidInputError("subject id must not contain control characters")
    local, at, domain = identifier.rpartition("@")
    if at and local and domain:
        identifier = f"{local}@{domain.lower()}"
    return f"{scheme.lower()}:{identifier}"
