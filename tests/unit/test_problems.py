"""The one table from Sealtrail errors to RFC 9457 problem responses."""

from __future__ import annotations

import orjson
import pytest

from sealtrail.errors import (
    AuthenticationError,
    BackpressureError,
    ConcurrentWriteError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    SealingError,
    SealtrailError,
    TooLargeError,
    UnavailableError,
)
from sealtrail.infra.problems import PROBLEM_JSON, problem_for


@pytest.mark.parametrize(("error", "status", "retry_after"), [
    (InvalidInputError("bad", pointer="/events/0/x"), 400, None),
    (TooLargeError("big"), 413, None),
    (AuthenticationError("who?"), 401, None),
    (PermissionDeniedError("no"), 403, None),
    (NotFoundError("gone"), 404, None),
    (BackpressureError("busy", retry_after=0.2), 429, "1"),
    (UnavailableError("down", retry_after=2.5), 503, "3"),
    (ConcurrentWriteError("race"), 503, "1"),
])
def test_each_error_type_has_its_status(error: SealtrailError, status: int, retry_after: str | None) -> None:
    """Statuses follow the table; pressure errors carry Retry-After rounded up to whole seconds."""
    response = problem_for(error)
    body = orjson.loads(bytes(response.body))
    assert response.status_code == body["status"] == status
    assert response.media_type == PROBLEM_JSON and body["type"].startswith("https://sealtrail.dev/problems/")
    assert response.headers.get("retry-after") == retry_after


def test_pointer_and_fallback() -> None:
    """A field error names its pointer; an unmapped error is a 500 that reveals nothing."""
    assert orjson.loads(bytes(problem_for(InvalidInputError("x", pointer="/a~1b")).body))["pointer"] == "/a~1b"
    hidden = problem_for(SealingError("key 123 failed"))
    assert hidden.status_code == 500 and b"123" not in bytes(hidden.body)
