"""``latency_ms`` takes a decimal number of milliseconds: whole, fractional or below one.

The value kept is the IEEE 754 double the JSON number denotes (I-JSON, RFC 7493), and the entry
holds it in its RFC 8785 form, so ``12.5`` stays ``12.5`` byte for byte and ``12.50`` becomes ``12.5``.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

import pytest

from sealtrail.core import histogram
from sealtrail.core.canonical import canonical_json
from sealtrail.core.events import EVENT_MODELS, header_dict
from sealtrail.core.jsonbody import read_events
from sealtrail.core.validation import validate_batch
from sealtrail.sdk import events as sdk_events

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
TYPES = frozenset(EVENT_MODELS)


def _call(latency: str) -> bytes:
    """A one-event batch body with ``latency`` written into it as JSON text."""
    return (
        '{"events": [{"event_id": "0192f3a0-7c4e-7b21-9d3a-5e8f1c2b4a6d", "type": "tool_call",'
        ' "occurred_at": "2026-12-07T12:00:00Z", "agent_id": "a", "server_id": "s", "tool_name": "t",'
        f' "decision": "allow", "status": "ok", "latency_ms": {latency}}}]}}'
    ).encode()


def _entry_header(body: bytes) -> bytes:
    accepted, rejected = validate_batch(read_events(body), now=NOW, accepted_types=TYPES)
    assert rejected == [], rejected
    header = header_dict(accepted[0].event, tenant="acme", gateway_id="gw", received_at=NOW)
    return canonical_json(header)


@pytest.mark.parametrize(("sent", "stored"), [
    ("12.5", b'"latency_ms":12.5,'), ("0.042", b'"latency_ms":0.042,'), ("0.000125", b'"latency_ms":0.000125,'),
    ("12.50", b'"latency_ms":12.5,'), ("1e-3", b'"latency_ms":0.001,'), ("12", b'"latency_ms":12,'),
    ("12.0", b'"latency_ms":12,'), ("184.25", b'"latency_ms":184.25,'),
])
def test_a_decimal_latency_is_accepted_and_kept_in_its_canonical_form(sent: str, stored: bytes) -> None:
    """Fractional and sub-millisecond latencies are accepted (12.5 was a 422); the entry header
    holds the number in its RFC 8785 form, which reads back as the same value."""
    entry = _entry_header(_call(sent))
    assert stored in entry
    assert json.loads(entry)["latency_ms"] == float(sent)


@pytest.mark.parametrize("sent", ["-0.5", "-1", '"12.5"', "true", "1e400", "9007199254740992"])
def test_a_latency_that_is_not_a_non_negative_number_is_refused_at_its_pointer(sent: str) -> None:
    """Negative, string, boolean, infinite and too-large latencies are refused, naming the field."""
    accepted, rejected = validate_batch(read_events(_call(sent)), now=NOW, accepted_types=TYPES)
    assert accepted == [] and len(rejected) == 1
    assert rejected[0].pointer == "/events/0/latency_ms"
    assert rejected[0].detail.startswith("latency_ms: ")


def test_health_checks_take_a_decimal_latency_too() -> None:
    """health_check's latency_ms is the same type as tool_call's."""
    event: dict[str, Any] = {"event_id": "0192f3a0-7c4e-7b21-9d3a-5e8f1c2b4a6d", "type": "health_check",
                             "occurred_at": "2026-12-07T12:00:00Z", "server_id": "s", "status": "healthy",
                             "latency_ms": 0.75}
    accepted, rejected = validate_batch([event], now=NOW, accepted_types=TYPES)
    assert rejected == [] and accepted[0].event.latency_ms == 0.75  # type: ignore[union-attr]


def test_the_sdk_builders_take_a_decimal_latency() -> None:
    """The SDK's tool_call and health_check builders pass a fractional latency through unchanged."""
    call = sdk_events.tool_call(agent_id="a", server_id="s", tool_name="t", decision="allow", status="ok",
                                latency_ms=0.042)
    check = sdk_events.health_check(server_id="s", status="healthy", latency_ms=12.5)
    assert call["latency_ms"] == 0.042 and check["latency_ms"] == 12.5
    accepted, rejected = validate_batch([call, check], now=datetime.now(UTC), accepted_types=TYPES)
    assert rejected == [] and len(accepted) == 2


@pytest.mark.parametrize("ms", [0, 1, 2, 3, 5, 99, 1000, 123456, 2**40])
def test_a_whole_float_falls_in_the_bucket_of_its_integer(ms: int) -> None:
    """12.0 and 12 count into the same histogram bucket."""
    assert histogram.bucket_of(float(ms)) == histogram.bucket_of(ms)


@pytest.mark.parametrize("ms", [0.0, 0.001, 0.5, 0.999999, 1.0, 1.2, 1.4142, 1.4143, 2.5, 12.5, 183.9, 1e7 + 0.5])
def test_a_fractional_latency_falls_in_the_bucket_whose_bounds_hold_it(ms: float) -> None:
    """Sub-millisecond latencies count into bucket 0 ([0, 1) ms); others into the bucket whose
    [low, high) bounds contain them."""
    b = histogram.bucket_of(ms)
    low, high = histogram.bounds(b)
    assert low <= ms < high
    assert (b == 0) == (ms < 1)


def test_bucket_edges_are_exact_at_powers_of_root_two() -> None:
    """Just below and at sqrt(2)**k the bucket changes exactly there (no float rounding drift)."""
    for k in range(2, 40, 2):  # even k: 2**(k/2) is an exact double
        edge = float(2 ** (k // 2))
        assert histogram.bucket_of(edge) == k + 1
        assert histogram.bucket_of(math.nextafter(edge, 0)) == k


def test_rollups_count_a_fractional_latency_into_its_bucket_and_the_sum_in_whole_ms() -> None:
    """The projector's rollups take 12.5 and 0.042 ms (they were skipped as not integers): each
    counts into the bucket of its exact value; the sum behind the mean adds them rounded to the
    nearest millisecond, halves up."""
    import orjson

    from services.projector.rollups import ProjectedEntry, aggregate

    common = {"type": "tool_call", "agent_id": "a", "server_id": "s", "tool_name": "t", "decision": "allow",
              "status": "ok"}
    entries = [ProjectedEntry.parse(log_id="acme", idx=i, occurred_at=NOW, entry=orjson.dumps({**common,
                                                                                              "latency_ms": ms}))
               for i, ms in enumerate((12.5, 0.042, 1.4, 7))]
    row = aggregate(entries).hourly[(NOW, "s", "t", "a", "allow", "ok", "")]
    assert (row.latency_n, row.latency_sum) == (4, 13 + 0 + 1 + 7)
    assert row.hist[0] == 1 and row.hist[histogram.bucket_of(12.5)] == 1
    assert row.hist[histogram.bucket_of(1.4)] == 1 and histogram.bucket_of(1.4) == 1
    assert histogram.bucket_of(11.5) == histogram.bucket_of(11) + 1  # 11.5 is past sqrt(2)**7 = 11.31..
