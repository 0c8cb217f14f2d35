"""Request and response models of the query API, for validation and OpenAPI.

Handlers answer with orjson directly; these models document the shapes. Request models refuse
unknown fields, and their validation errors never echo a value (a subject id is personal).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from sealtrail.core.erasure import REQUEST_REF_PATTERN
from sealtrail.core.fields import CODE_PATTERN, MAX_SUBJECT_LENGTH

SUBJECT_DOC = "data-subject id `scheme:identifier`, e.g. `user:alice@example.com` (normalised by the service)"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ExportRequest(_Body):
    subject: str = Field(min_length=3, max_length=MAX_SUBJECT_LENGTH, description=SUBJECT_DOC)
    purpose: str = Field(pattern=CODE_PATTERN, description="purpose code, written into each access event")
    note: str | None = Field(default=None, max_length=1000,
                             description="free-text purpose; sealed into the access events' payload")
    cursor: str | None = Field(default=None, description="`next` of the previous page")
    limit: int = Field(default=1000, ge=1, le=1000)


class EraseRequest(_Body):
    subject: str = Field(min_length=3, max_length=MAX_SUBJECT_LENGTH, description=SUBJECT_DOC)
    request_ref: str = Field(pattern=REQUEST_REF_PATTERN,
                             description="the DPO's reference (an identifier, logged in clear)")
    legal_basis: str = Field(pattern=CODE_PATTERN, description="code, e.g. `gdpr.art17.1a`")


class HoldRequest(_Body):
    subject: str = Field(min_length=3, max_length=MAX_SUBJECT_LENGTH, description=SUBJECT_DOC)
    reason: str = Field(pattern=CODE_PATTERN, description="code, e.g. `litigation`")
    case_ref: str | None = Field(default=None, pattern=REQUEST_REF_PATTERN)


class HoldReleaseRequest(_Body):
    subject: str = Field(min_length=3, max_length=MAX_SUBJECT_LENGTH, description=SUBJECT_DOC)
    reason: str | None = Field(default=None, pattern=CODE_PATTERN,
                               description="required: why the hold ends, a code, e.g. `litigation.closed`")


class SubjectRequest(_Body):
    subject: str = Field(min_length=3, max_length=MAX_SUBJECT_LENGTH, description=SUBJECT_DOC)


class Call(BaseModel):
    log: str
    index: int
    leaf_hash: str = Field(description="base64 RFC 6962 leaf hash of the entry bytes: check it against the "
                                       "inclusion proof of this index")
    header: dict[str, Any] = Field(description="the log entry's header, parsed from the signed entry bytes")
    inconsistent: list[str] | None = Field(
        default=None, description="present when stored copies of this entry disagree with its signed bytes: "
                                  "the fields that differ (see `inconsistent` of the answer)")


class Inconsistency(BaseModel):
    log: str
    index: int
    fields: list[str] = Field(description="the stored copies that disagree with the signed entry "
                                          "(`leaf`, a column name, `subject_index`, `occurred_at`, ...)")
    withheld: bool = Field(description="true when the row is not in the answer: its bytes do not hash to "
                                       "its leaf, it belongs elsewhere, or its signed header does not match")


class CallPage(BaseModel):
    calls: list[Call]
    next: str | None = Field(description="cursor of the next page; null on the last page")
    inconsistent: list[Inconsistency] = Field(
        default_factory=list, description="entries of this page whose stored copies disagree with the signed "
                                          "entry bytes; empty when everything agrees")


class CallDetail(Call):
    payload_state: str | None = Field(
        default=None, description="with ?purpose=: revealed | erased | expired | deleted | unreadable")
    payload: dict[str, Any] | None = Field(default=None, description="the decrypted payload when revealed")
    payload_detail: str | None = None
    access_event_id: str | None = Field(default=None, description="the access event written before answering")


class SessionTimeline(BaseModel):
    session_id: str
    summary: dict[str, Any] | None = Field(description="the projector's session row, when projected")
    summary_checked: bool = Field(description="true when this page holds the whole session and the summary was "
                                              "recomputed from its signed entries")
    summary_inconsistent: list[str] | None = Field(
        default=None, description="present when the summary disagrees with the signed entries: the fields")
    calls: list[Call]
    next: str | None
    inconsistent: list[Inconsistency] = Field(default_factory=list)


class LogInfo(BaseModel):
    log: str
    origin: str
    size: int


class LogList(BaseModel):
    logs: list[LogInfo]


class CheckpointWitnesses(BaseModel):
    cosigners: list[str] = Field(description="names of the configured witnesses whose cosignature verifies")
    quorum: int = Field(description="cosignatures that make a checkpoint witnessed")
    witnessed: bool = Field(description="whether the quorum is reached")


class CheckpointItem(BaseModel):
    size: int
    signed_at: str
    note: str = Field(description="C2SP signed note (c2sp.org/tlog-checkpoint)")
    witnesses: CheckpointWitnesses | None = Field(
        description="with witnesses configured: which of them validly cosigned this checkpoint; else null")


class CheckpointList(BaseModel):
    log: str
    checkpoints: list[CheckpointItem]
    next: int | None = Field(description="`from` of the next page; null on the last page")


class EntryItem(BaseModel):
    index: int
    entry: str = Field(description="base64 of the exact entry bytes (RFC 8785 header)")
    chain: str = Field(description="base64 of the stored hash-chain value")
    payload_present: bool
    payload_digest: str | None = Field(description="blake3 digest of the stored nonce and ciphertext")


class EntryPage(BaseModel):
    log: str
    start: int
    end: int
    entries: list[EntryItem]


class InclusionProof(BaseModel):
    log: str
    index: int
    size: int
    proof: list[str] = Field(description="base64 RFC 9162 inclusion proof hashes")


class ConsistencyProof(BaseModel):
    log: str
    size1: int = Field(alias="from")
    size2: int = Field(alias="to")
    proof: list[str] = Field(description="base64 RFC 9162 consistency proof hashes")


class LogEvent(BaseModel):
    index: int
    header: dict[str, Any]


class ErasureEvents(BaseModel):
    log: str
    events: list[LogEvent] = Field(description="the log's erasure and retention events, in log order")


class PublishedKey(BaseModel):
    purpose: str = Field(description="checkpoint | cosign | receipt | erasure-receipt")
    vkey: str
    not_before: int | None
    not_after: int | None


class KeyList(BaseModel):
    keys: list[PublishedKey]


class ExportedEntry(CallDetail):
    pass


class ExportPage(BaseModel):
    export_ref: str = Field(description="shared by this page's access events")
    entries: list[ExportedEntry]
    access_events: int
    next: str | None
    inconsistent: list[Inconsistency] = Field(
        default_factory=list, description="entries the subject index listed whose stored copies disagree with "
                                          "the signed entry (a withheld one is not exported)")


class ErasureRecordModel(BaseModel):
    request_ref: str
    legal_basis: str
    state: str
    requested_by: str
    erased_key_ids: list[str]
    payloads_deleted: int
    index_rows_deleted: int
    event_id: str | None
    requested_at: str
    erased_at: str | None
    caches_clear_by: str | None
    receipt: str | None = Field(description="C2SP signed note by the query service's key (docs/query.md)")
    log_index: int | None = Field(default=None, description="index of the erasure event in the tenant's log, "
                                                            "once sequenced")
    inconsistent: list[str] | None = Field(
        default=None, description="present when the record disagrees with its erasure event: the fields")


class ErasureHistory(BaseModel):
    erasures: list[ErasureRecordModel]
    hold: dict[str, Any] | None = Field(default=None, description="the subject's legal hold, if any")
    released_holds: list[dict[str, Any]] = Field(
        default_factory=list, description="the subject's released holds, newest first: the hold as set "
        "(reason, case_ref, set_by, set_at) and its release (release_reason, released_by, released_at)")
    inconsistent: list[Inconsistency] = Field(
        default_factory=list, description="erasure records that disagree with their erasure event in the log")


class Problem(BaseModel):
    """RFC 9457 problem details (``application/problem+json``)."""

    type: str
    title: str
    status: int
    detail: str
    pointer: str | None = None
