"""Opening stored payloads for reveal and export, and recording every such access in the log.

A payload that cannot be opened is never an error to the caller: it is a marker saying why
(``erased``: a data subject's key was destroyed; ``expired``: its period key expired with its
retention; ``deleted``: no ciphertext is stored and no destroyed key explains it;
``unreadable``: the stored bytes do not open with the keys, which means tampering). Only the
state is logged or counted, never the payload or the error's text.

:class:`AccessRecorder` writes one ``access`` event per revealed or exported payload and MUST be
awaited, and succeed, before any plaintext leaves the service.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sealtrail.core.keystore import KeyStore
from sealtrail.core.sealing import DataKey, SealedPayload, open_sealed
from sealtrail.errors import PeriodExpiredError, SealingError, SubjectErasedError
from sealtrail.infra.auth import Principal
from sealtrail.infra.emitter import Emission, EventEmitter, access_event
from services.query.metrics import QueryMetrics
from services.query.ports import StoredCall

log = logging.getLogger("sealtrail.query")

PayloadState = Literal["revealed", "erased", "expired", "deleted", "unreadable"]
DETAILS: dict[str, str] = {
    "revealed": "payload decrypted; this access is recorded in the log",
    "erased": "payload erased: a data subject's key was destroyed",
    "expired": "payload expired with its retention period",
    "deleted": "payload is not stored",
    "unreadable": "payload does not open with its keys",
}


@dataclass(frozen=True, slots=True)
class Opened:
    """The outcome of opening one stored payload."""

    state: PayloadState
    payload: dict[str, Any] | None = None

    def as_json(self) -> dict[str, Any]:
        return {"payload_state": self.state, "payload": self.payload, "payload_detail": DETAILS[self.state]}


class PayloadOpener:
    """Opens stored payloads with keys from the key store (one lookup per batch of calls)."""

    def __init__(self, *, keystore: KeyStore, metrics: QueryMetrics) -> None:
        self._keystore = keystore
        self._metrics = metrics

    async def open_all(self, tenant: str, calls: Sequence[StoredCall]) -> list[Opened]:
        wanted = {k for c in calls for k in _key_ids(c)}
        keys = await self._keystore.get_keys(tenant, wanted) if wanted else {}
        opened = [self._open(tenant, c, keys) for c in calls]
        for o in opened:
            if o.state != "revealed":
                self._metrics.payloads_unavailable.labels(state=o.state).inc()
        return opened

    def _open(self, tenant: str, call: StoredCall, keys: dict[str, DataKey | None]) -> Opened:
        header = call.found.header
        if call.ciphertext is None or call.nonce is None or call.key_ids is None:
            return Opened(_why_missing(_key_ids(call), keys))
        sealed = SealedPayload(call.nonce, call.ciphertext, call.key_ids, str(header.get("payload_digest")),
                               int(header.get("payload_size", 0)))
        try:
            payload = open_sealed(sealed, tenant=tenant, event_id=str(header["event_id"]),
                                  type=str(header["type"]), keys=keys)
        except SubjectErasedError:
            return Opened("erased")
        except PeriodExpiredError:
            return Opened("expired")
        except SealingError:
            log.warning("stored payload does not open", extra={"log_id": call.found.log_id,
                                                                 "index": call.found.idx})
            return Opened("unreadable")
        return Opened("revealed", payload)


def _key_ids(call: StoredCall) -> tuple[str, ...]:
    if call.key_ids is not None:
        return call.key_ids
    return tuple(str(k) for k in call.found.header.get("key_ids", ()))


def _why_missing(key_ids: Iterable[str], keys: dict[str, DataKey | None]) -> PayloadState:
    ids = list(key_ids)
    found = [keys.get(k) for k in ids]
    if found and found[0] is not None and found[0].state == "erased":
        return "expired"
    if any(k is not None and k.state == "erased" for k in found[1:]):
        return "erased"
    return "deleted"


class AccessRecorder:
    """Writes ``access`` events: one per payload revealed or exported (see the module docstring)."""

    def __init__(self, *, emitter: EventEmitter, metrics: QueryMetrics) -> None:
        self._emitter = emitter
        self._metrics = metrics

    async def record(
        self, principal: Principal, *, purpose: str, targets: Sequence[str], action: str,
        note: str | None = None, export_ref: str | None = None,
    ) -> list[str]:
        """Append the access events and return their event ids once the bus acknowledged them."""
        now = self._emitter.now()
        payload = {"note": note} if note else None
        emissions = [
            Emission(access_event(now=now, accessor_key_id=principal.key_id, purpose_code=purpose,
                                  target_event_id=target, action=action, export_ref=export_ref), payload)
            for target in targets
        ]
        records = await self._emitter.emit(principal.tenant_id, emissions)
        self._metrics.access_events.labels(action=action).inc(len(records))
        return [r.event_id for r in records]
