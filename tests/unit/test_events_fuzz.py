"""Property tests: whatever JSON arrives, batch validation answers with rejections, never raises."""

from __future__ import annotations

import copy
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sealtrail.core.events import EVENT_MODELS
from sealtrail.core.validation import validate_batch

EXAMPLES = Path(__file__).resolve().parents[2] / "schemas" / "examples"
NOW = datetime.fromisoformat("2025-11-04T09:15:30Z")
MARKER = "PLANTED-SECRET-d41d"
VALID = [json.loads(p.read_text()) for p in sorted(EXAMPLES.glob("*/valid/*.json"))]

_SCALARS = (
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
    | st.sampled_from([MARKER, sorted(EVENT_MODELS), "\u0000", "2025-11-04T09:15:27Z", *EVENT_MODELS])
)
JSON = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)


def _check(batch: list[object]) -> None:
    accepted, rejected = validate_batch(batch, now=NOW)
    positions = sorted([v.index for v in accepted] + [r.index for r in rejected])
    assert positions == list(range(len(batch)))
    for rejection in rejected:
        assert rejection.pointer.startswith(f"/events/{rejection.index}")
        assert MARKER not in rejection.detail + rejection.pointer + rejection.title


@settings(max_examples=300, deadline=None)
@given(st.lists(JSON, max_size=5))
def test_random_json_never_raises(batch: list[object]) -> None:
    """Random JSON values of any shape are answered position by position."""
    _check(batch)


@st.composite
def near_valid(draw: st.DrawFn) -> dict[str, Any]:
    event: dict[str, Any] = copy.deepcopy(draw(st.sampled_from(VALID)))
    event["payload"] = draw(st.dictionaries(st.sampled_from([MARKER, "a", "b"]), JSON, max_size=3))
    for _ in range(draw(st.integers(0, 3))):
        name = draw(st.sampled_from(sorted(event)) | st.text(max_size=8) | st.just(MARKER))
        if draw(st.booleans()) and name in event:
            del event[name]
        else:
            event[name] = draw(JSON)
    return event


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(near_valid(), min_size=1, max_size=4))
def test_near_valid_events_never_raise_or_leak(batch: list[object]) -> None:
    """Valid events with broken fields and payloads full of a planted secret never raise or leak it.

    Header fields may legitimately name a field (even an unknown one) in a pointer, so the marker
    is planted as payload keys and values, and as values of arbitrary fields.
    """
    accepted, rejected = validate_batch(batch, now=NOW)
    assert len(accepted) + len(rejected) == len(batch)
    for rejection in rejected:
        if MARKER not in rejection.pointer:  # an unknown field literally named MARKER may be pointed at
            assert MARKER not in rejection.detail
