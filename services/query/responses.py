"""Response helpers shared by the query routers: orjson bodies, documented problems, and the
handler that turns request-validation errors into RFC 9457 problems without echoing input."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from sealtrail.core.fields import plain_name
from sealtrail.errors import AuthenticationError
from sealtrail.infra.problems import PROBLEM_JSON, http_problem, problem_for, problem_response
from services.query.models import Problem
from services.query.routing import allowed_methods

TEXT = "text/plain; charset=utf-8"
PUBLIC_TAG = "operations"
"""The tag of the routes that need no key (health, readiness, metrics)."""

_TEXTS = {
    400: "Invalid parameter or body (the pointer names it)",
    401: "Missing, malformed, unknown, revoked or expired API key",
    403: "The key's role lacks the scope this needs",
    404: "No such log, event or session in the caller's tenant",
    409: "Conflict (e.g. subject under legal hold)",
    503: "Kafka did not acknowledge the access record; nothing was revealed (Retry-After)",
}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the given problem statuses."""
    return {s: {"model": Problem, "content": {PROBLEM_JSON: {}}, "description": _TEXTS[s]} for s in statuses}


def json_response(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _pointer(loc: tuple[Any, ...]) -> str:
    where, *path = loc if loc else ("body",)
    parts = [str(p).replace("~", "~0").replace("/", "~1") for p in path]
    if where == "body":
        return "".join("/" + p for p in parts)
    return f"{where}:{'/'.join(parts)}"


def _described(error: dict[str, Any]) -> tuple[str, str]:
    """The pointer and message of one validation error, with nothing the client sent in them but
    names that are plain identifiers (:func:`sealtrail.core.fields.plain_name`)."""
    loc, kind = tuple(error.get("loc", ())), str(error.get("type", ""))
    msg = str(error.get("msg", "invalid"))
    if kind == "extra_forbidden" and loc:  # the last segment is the unknown member's name
        name, loc = str(loc[-1]), loc[:-1]
        msg = f"unknown member {name!r}" if plain_name(name) else "unknown member"
    elif kind == "json_invalid":
        loc, msg = ("body",), "body is not valid JSON"
    elif kind.endswith("_parsing"):  # after the comma, pydantic quotes what it could not parse
        msg = msg.split(",", 1)[0]
    return _pointer(loc), msg


async def validation_problem(request: Request, exc: Exception) -> Response:
    """400 for the first invalid parameter or field; its value is never repeated.

    FastAPI parses a JSON body before it runs the route's dependencies, so the caller is
    authenticated here first: without a valid key the answer is 401, never a description of the
    input."""
    assert isinstance(exc, RequestValidationError)
    refused = await _unauthenticated(request)
    if refused is not None:
        return refused
    errors = exc.errors()
    pointer, msg = _described(errors[0] if errors else {"loc": ("body",), "msg": "invalid request"})
    detail = f"{pointer}: {msg}" if pointer and not pointer.endswith(":") else msg
    return problem_response(400, "invalid-request", "Invalid request", detail, extra={"pointer": pointer})


async def body_problem(request: Request, exc: Exception) -> Response:
    """An HTTPException as a problem; for an unparsable body (400), only once the caller is known.
    A 405's ``Allow`` names the methods of every route of the path, not only the first one's."""
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400:
        refused = await _unauthenticated(request)
        if refused is not None:
            return refused
    if exc.status_code == 405:
        allowed = allowed_methods(request.app.routes, request.scope)
        if allowed:
            exc = StarletteHTTPException(405, headers={"Allow": ", ".join(allowed)})
    return await http_problem(request, exc)


async def _unauthenticated(request: Request) -> Response | None:
    """The 401 for a request without a valid key, or None when its key is valid or the route is public."""
    service = getattr(request.app.state, "query", None)
    if service is None or PUBLIC_TAG in getattr(request.scope.get("route"), "tags", ()):
        return None
    try:
        await service.authenticator.authenticate(request.headers.get("authorization"))
    except AuthenticationError as e:
        return problem_for(e)
    return None
