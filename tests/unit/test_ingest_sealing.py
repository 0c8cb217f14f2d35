"""Ingest's sealing shortcut and key files: what ingest seals, the core opens; keys stay secret."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sealtrail.core.canonical import canonical_json
from sealtrail.core.sealing import DataKey, Kek, open_sealed
from sealtrail.errors import InvalidInputError, SealingError, ServiceStartError
from sealtrail.infra.kek import IndexKeyWrapper, load_kek, write_kek_file
from sealtrail.infra.settings import Settings
from services.ingest.sealer import seal_canonical

EVENT_ID = "0190f0e8-1234-7abc-8def-0123456789ab"


def test_seal_canonical_opens_with_the_core() -> None:
    """A payload sealed from its canonical bytes opens with open_sealed under the same keys and
    identifiers, and fails with any key missing."""
    period, subject = DataKey.generate("period"), DataKey.generate("subject")
    payload = {"b": [1, 2], "a": "é"}
    sealed = seal_canonical(canonical_json(payload), tenant="acme", event_id=EVENT_ID, type="tool_call",
                            period_key=period, subject_keys=[subject])
    keys = {period.key_id: period, subject.key_id: subject}
    assert open_sealed(sealed, tenant="acme", event_id=EVENT_ID, type="tool_call", keys=keys) == payload
    assert sealed.key_ids == (period.key_id, subject.key_id)
    with pytest.raises(SealingError):
        open_sealed(sealed, tenant="acme", event_id=EVENT_ID, type="tool_call", keys={period.key_id: period})
    with pytest.raises(SealingError):
        open_sealed(sealed, tenant="beta", event_id=EVENT_ID, type="tool_call", keys=keys)


def test_kek_file_is_private_and_never_overwritten(tmp_path: Path) -> None:
    """generate writes a 0600 file and refuses to overwrite; a group-readable KEK file is refused."""
    path = tmp_path / "kek"
    kek = write_kek_file(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_kek(Settings(kek_file=path)).kek_id == kek.kek_id
    with pytest.raises(InvalidInputError):
        write_kek_file(path)
    path.chmod(0o640)
    with pytest.raises(ServiceStartError):
        load_kek(Settings(kek_file=path))


def test_index_key_wrap_is_bound_to_tenant_and_kek() -> None:
    """A wrapped index key unwraps for its tenant and KEK only."""
    kek, key = Kek.generate(), os.urandom(32)
    blob = IndexKeyWrapper(kek=kek, tenant="acme").wrap(key)
    assert key not in blob
    assert IndexKeyWrapper(kek=kek, tenant="acme").unwrap(blob, kek_id=kek.kek_id) == key
    with pytest.raises(SealingError):
        IndexKeyWrapper(kek=kek, tenant="beta").unwrap(blob, kek_id=kek.kek_id)
    with pytest.raises(SealingError):
        IndexKeyWrapper(kek=Kek.generate(), tenant="acme").unwrap(blob, kek_id=kek.kek_id)


def test_shortcuts_write_the_same_bytes_as_the_core() -> None:
    """The orjson AAD equals the RFC 8785 AAD, and the header taken from the raw event equals
    header_dict of the validated model, for one event of every gateway type."""
    from datetime import UTC, datetime

    from sealtrail.core.events import header_dict
    from sealtrail.core.fields import format_timestamp
    from sealtrail.core.sealing import payload_aad
    from sealtrail.core.validation import validate_batch
    from sealtrail.sdk import (
        approval,
        credential_rotation,
        health_check,
        rate_limit,
        server_status,
        tool_call,
        tool_list,
        uuid7,
    )
    from services.ingest.sealer import header_from_raw, identifiers_aad

    ids = ("ab" * 16, "cd" * 16)
    assert identifiers_aad(tenant="acme-1", event_id=EVENT_ID, type="tool_call", key_ids=ids) == \
        payload_aad(tenant="acme-1", event_id=EVENT_ID, type="tool_call", key_ids=ids)
    now = datetime.now(UTC)
    raw = [tool_call(agent_id="a", server_id="s", tool_name="t", decision="deny", status="denied",
                     cost_micros=5, currency="USD", trace_id="1" * 32, span_id="2" * 16, payload={"x": 1}),
           approval(approval_id="ap", call_event_id=uuid7(), decision="refused", wait_ms=10),
           rate_limit(limit_id="l", window_s=1, limit=1, observed=2), health_check(server_id="s", status="healthy"),
           tool_list(server_id="s", tools=[("a", "sha256:" + "0" * 64)]), server_status(server_id="s", state="active"),
           credential_rotation(server_id="s", credential_id="c", expires_at=now)]
    raw[0]["schema"] = "sealtrail.tool_call/v1"
    valid, rejected = validate_batch(raw, now=now)
    assert not rejected
    period = DataKey.generate("period")
    stamp = {"tenant": "acme", "gateway_id": "gw", "received_at": format_timestamp(now)}
    for v in valid:
        sealed = seal_canonical(v.payload_json or b"{}", tenant="acme", event_id=v.event.event_id,
                                type=v.event.type, period_key=period, subject_keys=[])
        assert header_from_raw(raw[v.index], stamp, sealed) == header_dict(
            v.event, tenant="acme", gateway_id="gw", received_at=now, sealed=sealed.header_fields())
