"""Header checks of the ledger agree with a plain reference: same columns, same first bad field."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from sealtrail.core.record import SealedRecord
from sealtrail.errors import InvalidInputError
from services.ledger.rows import INT_COLUMN_NAMES, NUMBER_COLUMN_NAMES, TEXT_COLUMN_NAMES, entry_columns

_MAX_INT = 2**63 - 1


def _reference(record: SealedRecord) -> tuple[Any, ...]:
    """The checks written out one field at a time, in the documented order."""
    h = record.header
    try:
        event_id = uuid.UUID(str(h["event_id"]))
    except ValueError as e:
        raise InvalidInputError("event_id is not a UUID", pointer="/header/event_id") from e
    if h.get("tenant") != record.log and not record.log.startswith(f"{h.get('tenant')}/"):
        raise InvalidInputError("header tenant does not own the log", pointer="/header/tenant")
    if not isinstance(h.get("type"), str):
        raise InvalidInputError("type must be a string", pointer="/header/type")
    times = []
    for name in ("occurred_at", "received_at"):
        v = h.get(name)
        if not isinstance(v, str):
            raise InvalidInputError(f"{name} must be an RFC 3339 string", pointer=f"/header/{name}")
        try:
            t = datetime.fromisoformat(v)
        except ValueError as e:
            raise InvalidInputError(f"{name} is not RFC 3339", pointer=f"/header/{name}") from e
        if t.tzinfo is None:
            raise InvalidInputError(f"{name} lacks a UTC offset", pointer=f"/header/{name}")
        times.append(t)
    for name in TEXT_COLUMN_NAMES:
        v = h.get(name)
        if v is not None and type(v) is not str:
            raise InvalidInputError(f"{name} must be a string", pointer=f"/header/{name}")
    for name in INT_COLUMN_NAMES:
        v = h.get(name)
        if name in NUMBER_COLUMN_NAMES and type(v) is float and 0 <= v <= _MAX_INT:
            continue
        if v is not None and (type(v) is not int or not 0 <= v <= _MAX_INT):
            kind = "number" if name in NUMBER_COLUMN_NAMES else "integer"
            raise InvalidInputError(f"{name} must be a non-negative {kind}", pointer=f"/header/{name}")
    key_ids = h.get("key_ids")
    if type(key_ids) is not list or any(type(k) is not str for k in key_ids):
        raise InvalidInputError("key_ids must be an array of strings", pointer="/header/key_ids")
    return (event_id, h["type"], *times, tuple(h.get(c) for c in TEXT_COLUMN_NAMES),
            tuple(h.get(c) for c in INT_COLUMN_NAMES), key_ids)


_GOOD = {
    "event_id": "01930c2e-7b1a-7cde-8f00-0123456789ab", "type": "tool_call", "tenant": "acme",
    "occurred_at": "2026-01-02T03:04:05.678Z", "received_at": "2026-01-02T03:04:06+00:00",
    "agent_id": "a", "session_id": "s", "server_id": "srv", "tool_name": "t", "tool_tier": "read",
    "decision": "allow", "status": "ok", "latency_ms": 3, "cost_micros": 0, "key_ids": ["k1", "k2"],
}
_odd_values = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**64), 2**64), st.floats(allow_nan=False), st.text(max_size=40),
    st.sampled_from(["2026-01-02T03:04:05", "2026-13-01T00:00:00Z", "acme", "acme/x", "urn:uuid:" + "0" * 32,
                     "{" + "f" * 32 + "}", "0" * 32, "not-a-uuid", "2026-01-02T03:04:05+01:00"]),
    st.lists(st.text(max_size=3), max_size=3), st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
_changes = st.dictionaries(st.sampled_from(sorted(_GOOD)), _odd_values, max_size=4)
_drops = st.sets(st.sampled_from(sorted(set(_GOOD) - {"event_id"})), max_size=3)


def _outcome(f: Any, record: SealedRecord) -> Any:
    try:
        return ("ok", tuple(f(record)))
    except InvalidInputError as e:
        return ("refused", e.detail, e.pointer)


@settings(max_examples=600, deadline=None)
@given(_changes, _drops, st.sampled_from(["acme", "acme/shard-1", "other"]))
def test_matches_the_reference_on_any_header(changes: dict[str, Any], drops: set[str], log: str) -> None:
    """For headers with any fields changed or missing, the columns, or the refusal and the field it
    names, are exactly the reference's."""
    header = {k: v for k, v in {**_GOOD, **changes}.items() if k not in drops}
    record = SealedRecord(log, header, b"\0" * 24, b"")
    assert _outcome(entry_columns, record) == _outcome(_reference, record)


def test_a_well_formed_header_converts() -> None:
    """A well-formed header gives database-typed columns and its key ids unchanged."""
    cols = entry_columns(SealedRecord("acme", dict(_GOOD), b"\0" * 24, b""))
    assert cols.event_id == uuid.UUID(_GOOD["event_id"])  # type: ignore[arg-type]
    assert cols.occurred_at.tzinfo is not None and cols.ints == (3, 0)
    assert cols.key_ids == ["k1", "k2"]


def test_a_fractional_latency_converts_and_a_fractional_cost_is_refused() -> None:
    """latency_ms may be a fraction (12.5, 0.042); cost_micros stays a whole number."""
    for latency in (12.5, 0.042, 0.0, 7):
        cols = entry_columns(SealedRecord("acme", {**_GOOD, "latency_ms": latency}, b"\0" * 24, b""))
        assert cols.ints == (latency, 0)
    for bad, name in (({"latency_ms": -0.5}, "latency_ms"), ({"latency_ms": float("nan")}, "latency_ms"),
                      ({"cost_micros": 1.5}, "cost_micros")):
        try:
            entry_columns(SealedRecord("acme", {**_GOOD, **bad}, b"\0" * 24, b""))
        except InvalidInputError as e:
            assert e.pointer == f"/header/{name}"
        else:
            raise AssertionError(f"{bad} accepted")


_uuid_like = st.text(alphabet="0123456789abcdefABCDEF-{}:urnid+_ g\u00e9", min_size=28, max_size=46)
_canonical = st.uuids().map(str)
_variants = _canonical.flatmap(lambda u: st.sampled_from([
    u, u.upper(), u.replace("-", ""), "{" + u + "}", "urn:uuid:" + u, u[:8] + u[9:], "-" + u, u + "-",
    " " + u, u.replace("-", "_"), "+" + u[1:], u[:-1], u + "0"]))


@settings(max_examples=1500, deadline=None)
@given(_uuid_like | _canonical | _variants)
def test_event_ids_parse_exactly_as_uuid_does(raw: str) -> None:
    """An event id is accepted exactly when uuid.UUID accepts it, with the same value and hash."""
    header = {**_GOOD, "event_id": raw}
    record = SealedRecord("acme", header, b"\0" * 24, b"")
    try:
        want = uuid.UUID(raw)
    except ValueError:
        try:
            entry_columns(record)
        except InvalidInputError as e:
            assert e.pointer == "/header/event_id"
            return
        raise AssertionError(f"{raw!r} accepted") from None
    got = entry_columns(record).event_id
    assert got == want and hash(got) == hash(want) and str(got) == str(want) and got.bytes == want.bytes
