"""The HTTP edge's one table from :mod:`sealtrail.errors` types to RFC 9457 problem details.

Every service installs it with :func:`install_problem_handlers`; routes raise Sealtrail errors
and never build error responses themselves. Problem ``detail`` is the error's own message, which
by the hierarchy's rule never holds payload plaintext, tokens or keys; unexpected exceptions are
answered with a fixed text and only their type is logged.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from sealtrail.errors import (
    AuthenticationError,
    BackpressureError,
    ConcurrentWriteError,
    ConflictError,
    IntegrityError,
    InvalidInputError,
    LegalHoldError,
    NotFoundError,
    PeriodExpiredError,
    PermissionDeniedError,
    SealtrailError,
    TooLargeError,
    UnavailableError,
    UnsupportedMediaTypeError,
    VerificationError,
)

PROBLEM_BASE = "https://sealtrail.dev/problems/"
PROBLEM_JSON = "application/problem+json"
log = logging.getLogger("sealtrail.http")

# Most specific first: the first entry the error is an instance of wins.
PROBLEM_TABLE: tuple[tuple[type[SealtrailError], int, str, str], ...] = (
    (TooLargeError, 413, "too-large", "Request too large"),
    (UnsupportedMediaTypeError, 415, "unsupported-media-type", "Unsupported media type"),
    (InvalidInputError, 400, "invalid-request", "Invalid request"),
    (AuthenticationError, 401, "unauthenticated", "Authentication required"),
    (PermissionDeniedError, 403, "forbidden", "Permission denied"),
    (NotFoundError, 404, "not-found", "Not found"),
    (LegalHoldError, 409, "legal-hold", "Subject under legal hold"),
    (PeriodExpiredError, 409, "period-expired", "Period expired"),
    (ConflictError, 409, "conflict", "Conflict"),
    (IntegrityError, 500, "integrity", "Stored data disagrees with the signed log"),
    (VerificationError, 422, "verification-failed", "Verification failed"),
    (UnavailableError, 503, "unavailable", "Service unavailable"),
    (ConcurrentWriteError, 503, "contention", "Concurrent update, retry"),
    (BackpressureError, 429, "backpressure", "Too many requests"),
)
_STATUS_SLUGS = {400: "invalid-request", 404: "not-found", 405: "method-not-allowed", 413: "too-large"}


def problem_response(
    status: int, slug: str, title: str, detail: str, *, headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> Response:
    body: dict[str, Any] = {"type": PROBLEM_BASE + slug, "title": title, "status": status, "detail": detail}
    if extra:
        body.update(extra)
    return Response(orjson.dumps(body), status_code=status, media_type=PROBLEM_JSON, headers=headers)


def problem_for(error: SealtrailError) -> Response:
    """The problem response for a Sealtrail error (500 for types the table does not name)."""
    for kind, status, slug, title in PROBLEM_TABLE:
        if isinstance(error, kind):
            return problem_response(status, slug, title, _detail(error), headers=_headers(error),
                                    extra=_extra(error))
    log.error("unmapped error", extra={"error_type": type(error).__name__})
    return problem_response(500, "internal", "Internal error", "the server failed to handle the request")


def _detail(error: SealtrailError) -> str:
    return str(getattr(error, "detail", None) or error) or type(error).__name__


def _headers(error: SealtrailError) -> dict[str, str] | None:
    if isinstance(error, BackpressureError):
        return {"Retry-After": str(max(1, math.ceil(error.retry_after)))}
    if isinstance(error, ConcurrentWriteError):
        return {"Retry-After": "1"}
    if isinstance(error, AuthenticationError):
        return {"WWW-Authenticate": 'Bearer realm="sealtrail"'}
    return None


def _extra(error: SealtrailError) -> dict[str, Any] | None:
    if isinstance(error, InvalidInputError) and error.pointer:
        return {"pointer": error.pointer}
    if isinstance(error, IntegrityError):
        return {"log": error.log_id, "index": error.index, "fields": list(error.fields)}
    if isinstance(error, VerificationError) and error.index is not None:
        return {"index": error.index}
    return None


async def _sealtrail_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, SealtrailError)
    return problem_for(exc)


async def http_problem(_: Request, exc: Exception) -> Response:
    """The problem response for a Starlette/FastAPI HTTPException (404, 405, an unparsable body...)."""
    assert isinstance(exc, StarletteHTTPException)
    slug = _STATUS_SLUGS.get(exc.status_code, "http-error")
    return problem_response(exc.status_code, slug, slug.replace("-", " ").capitalize(), str(exc.detail),
                            headers=dict(exc.headers) if exc.headers else None)


async def _unexpected(_: Request, exc: Exception) -> Response:
    log.error("unexpected error", extra={"error_type": type(exc).__name__})
    return problem_response(500, "internal", "Internal error", "the server failed to handle the request")


def install_problem_handlers(app: FastAPI) -> None:
    """Answer every error of ``app`` as ``application/problem+json``."""
    app.add_exception_handler(SealtrailError, _sealtrail_error)
    app.add_exception_handler(StarletteHTTPException, http_problem)
    app.add_exception_handler(Exception, _unexpected)
