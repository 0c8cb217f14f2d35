"""Canonical JSON equals the RFC 8785 reference on every input, fast path or not."""

from __future__ import annotations

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from sealtrail.core.canonical import canonical_json
from sealtrail.errors import InvalidInputError

_scalars = (
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text()
)
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=30,
)


@settings(max_examples=400, deadline=None)
@given(_json)
def test_matches_reference_implementation(value: object) -> None:
    """For any JSON value, the output is byte-identical to the rfc8785 reference."""
    try:
        expected = rfc8785.dumps(value)
    except Exception:
        with pytest.raises(InvalidInputError):
            canonical_json(value)
        return
    assert canonical_json(value) == expected


def test_key_order_is_utf16_code_units() -> None:
    """Keys beyond U+E000 sort by UTF-16 code units, as RFC 8785 requires, not by code point."""
    value = {"\U0001f600": 1, "\ufb01": 2, "a": 3}
    assert canonical_json(value) == rfc8785.dumps(value)
    assert canonical_json(value).index("\U0001f600".encode()) < canonical_json(value).index("\ufb01".encode())


@pytest.mark.parametrize("bad", [{"n": float("nan")}, {"big": 2**60}, {1: "x"}])
def test_unrepresentable_values_are_rejected(bad: object) -> None:
    """NaN, integers beyond double precision and non-string keys raise a typed error."""
    with pytest.raises(InvalidInputError):
        canonical_json(bad)
