"""RFC 8785 (JCS) canonical JSON: the exact bytes that are stored, hashed and signed.

Fast path: for values made only of objects, arrays, strings, booleans, null and integers within
IEEE 754 double precision, whose object keys are all below U+E000, orjson with sorted keys emits
exactly the JCS bytes (same escapes, raw UTF-8, and code-point key order equals UTF-16 order
below U+E000). Everything else (floats, exotic keys) goes through the ``rfc8785`` reference
implementation. A property test holds the two paths to the same output.
"""

from __future__ import annotations

from typing import Any

import orjson
import rfc8785

from sealtrail.errors import InvalidInputError

_MAX_SAFE_INT = 2**53 - 1
_FAST_KEY_LIMIT = "\ue000"


def canonical_json(value: Any) -> bytes:
    """Return the RFC 8785 canonical UTF-8 bytes of ``value``.

    Raises :class:`InvalidInputError` for values JCS cannot represent (NaN, integers beyond
    IEEE 754 double precision, non-string keys, lone surrogates).
    """
    if _fast_ok(value, 0):
        try:
            return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:
            pass  # e.g. a lone surrogate: let the reference implementation decide
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, TypeError, ValueError, UnicodeError) as e:
        raise InvalidInputError(f"value has no RFC 8785 canonical form: {type(e).__name__}") from e


def _fast_ok(value: Any, depth: int) -> bool:
    # Scalars inside containers are checked inline: this runs once per stored entry.
    t = type(value)
    if t is dict:
        if depth > 64:
            return False
        for k, v in value.items():
            if type(k) is not str or not (k.isascii() or max(k) < _FAST_KEY_LIMIT):
                return False
            tv = type(v)
            if tv is str or tv is bool or v is None:
                continue
            if tv is int:
                if -_MAX_SAFE_INT <= v <= _MAX_SAFE_INT:
                    continue
                return False
            if not _fast_ok(v, depth + 1):
                return False
        return True
    if t is list:
        if depth > 64:
            return False
        for v in value:
            tv = type(v)
            if tv is str or tv is bool or v is None:
                continue
            if tv is int:
                if -_MAX_SAFE_INT <= v <= _MAX_SAFE_INT:
                    continue
                return False
            if not _fast_ok(v, depth + 1):
                return False
        return True
    if t is str or t is bool or value is None:
        return True
    if t is int:
        return bool(-_MAX_SAFE_INT <= value <= _MAX_SAFE_INT)
    return False
