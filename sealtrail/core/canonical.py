"""RFC 8785 (JCS) canonical JSON: the exact bytes that are stored, hashed and signed."""

from __future__ import annotations

from typing import Any

import rfc8785

from sealtrail.errors import InvalidInputError


def canonical_json(value: Any) -> bytes:
    """Return the RFC 8785 canonical UTF-8 bytes of ``value``.

    Raises :class:`InvalidInputError` for values JCS cannot represent (NaN, integers beyond
    IEEE 754 double precision, non-string keys).
    """
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as e:
        raise InvalidInputError(f"value has no RFC 8785 canonical form: {type(e).__name__}") from e
