"""Writing Sealtrail's own events (``access``, ``erasure``, ``retention``) into a tenant's log.

They take the path every event takes (DESIGN §2): the header is built with
:func:`~sealtrail.core.events.header_dict`, the payload (``{}`` when there is none, as ingest
does, so every entry carries ``key_ids``, ``payload_digest`` and ``payload_size``) is sealed
under the period key of the UTC month of ``received_at``, and a
:class:`~sealtrail.core.record.SealedRecord` keyed by the log id is published to the sealed
topic, where the ledger sequences it like any gateway's event.

:meth:`EventEmitter.emit` MUST return only once the bus acknowledged every record (acks=all);
then the ledger will append them exactly once. It raises
:class:`~sealtrail.errors.UnavailableError` otherwise, and the caller MUST then act as if nothing
was written (e.g. not return the plaintext whose access it was recording). No plaintext payload
is ever in a record, a log line or an error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sealtrail.core.canonical import canonical_json
from sealtrail.core.events import AccessEvent, ErasureEvent, EventModel, RetentionEvent, header_dict
from sealtrail.core.fields import format_timestamp
from sealtrail.core.keystore import KeyStore, period_of
from sealtrail.core.record import SealedRecord
from sealtrail.core.sealing import DataKey, seal_json
from sealtrail.infra.bus import BusPublisher
from sealtrail.sdk.events import uuid7

DEFAULT_WRITER = "sealtrail"
"""The ``gateway_id`` stamped on Sealtrail-written events (their ``type`` is what marks them as
Sealtrail's own: ingest refuses those types from every gateway)."""
EMPTY_PAYLOAD = b"{}"


def utc_now() -> datetime:
    return datetime.now(UTC)


def new_event_id() -> str:
    """A fresh UUIDv7 event id."""
    return uuid7()


@dataclass(frozen=True, slots=True)
class Emission:
    """One event to write: the header model, and the payload to seal with it (if any)."""

    event: EventModel
    payload: Mapping[str, Any] | None = None
    subject_keys: tuple[DataKey, ...] = ()


class EventEmitter:
    """Seals and publishes Sealtrail-written events (see the module docstring)."""

    def __init__(
        self, *, keystore: KeyStore, publisher: BusPublisher, topic: str, writer: str = DEFAULT_WRITER,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._keystore = keystore
        self._publisher = publisher
        self._topic = topic
        self._writer = writer
        self._clock = clock

    def now(self) -> datetime:
        return self._clock()

    async def emit(self, tenant: str, emissions: Sequence[Emission]) -> list[SealedRecord]:
        """Seal ``emissions`` for ``tenant``'s log and publish them in one acknowledged batch."""
        if not emissions:
            return []
        received_at = self._clock()
        period_key = await self._keystore.get_or_create_period_key(tenant, period_of(received_at))
        records = [self.seal(tenant, e, period_key=period_key, received_at=received_at) for e in emissions]
        await self._publisher.publish(self._topic, [(r.log.encode(), r.encode()) for r in records])
        return records

    def seal(self, tenant: str, emission: Emission, *, period_key: DataKey, received_at: datetime
             ) -> SealedRecord:
        """The sealed record of one event (no I/O)."""
        event = emission.event
        plaintext = canonical_json(dict(emission.payload)) if emission.payload else EMPTY_PAYLOAD
        sealed = seal_json(plaintext, tenant=tenant, event_id=event.event_id, type=event.type,
                           period_key=period_key, subject_keys=emission.subject_keys)
        header = header_dict(event, tenant=tenant, gateway_id=self._writer, received_at=received_at,
                             sealed=sealed.header_fields())
        return SealedRecord(log=tenant, header=header, nonce=sealed.nonce, ciphertext=sealed.ciphertext)


def _stamp(now: datetime, event_id: str | None = None) -> dict[str, str]:
    return {"event_id": event_id or new_event_id(), "occurred_at": format_timestamp(now)}


def access_event(
    *, now: datetime, accessor_key_id: str, purpose_code: str, target_event_id: str, action: str,
    export_ref: str | None = None,
) -> AccessEvent:
    """An ``access`` header: who revealed or exported which event's payload, and why (a code)."""
    fields: dict[str, Any] = {**_stamp(now), "type": "access", "accessor_key_id": accessor_key_id,
                              "purpose_code": purpose_code, "target_event_id": target_event_id,
                              "action": action}
    if export_ref is not None:
        fields["export_ref"] = export_ref
    return AccessEvent.model_validate(fields)


def erasure_event(
    *, now: datetime, request_ref: str, legal_basis: str, erased_key_ids: Sequence[str],
    payloads_deleted: int, index_rows_deleted: int, caches_clear_by: datetime, event_id: str | None = None,
) -> ErasureEvent:
    """An ``erasure`` header: identifiers and counts only, never the subject.

    Give ``event_id`` to write the same event again (the ledger appends one event id once).
    """
    return ErasureEvent.model_validate({
        **_stamp(now, event_id), "type": "erasure", "request_ref": request_ref, "legal_basis": legal_basis,
        "erased_key_ids": list(erased_key_ids), "payloads_deleted": payloads_deleted,
        "index_rows_deleted": index_rows_deleted, "caches_clear_by": format_timestamp(caches_clear_by),
    })


def retention_event(
    *, now: datetime, period: str, period_key_id: str, payloads_deleted: int, event_id: str | None = None,
) -> RetentionEvent:
    """A ``retention`` header: the period whose key expired and how many payloads went with it."""
    return RetentionEvent.model_validate({
        **_stamp(now, event_id), "type": "retention", "period": period, "period_key_id": period_key_id,
        "payloads_deleted": payloads_deleted,
    })
