"""Response helpers shared by the query routers: orjson bodies, documented problems, and the
handler that turns request-validation errors into RFC 9457 problems without echoing input."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError

from sealtrail.infra.problems import PROBLEM_JSON, problem_response
from services.query.models import Problem

TEXT = "text/plain; charset=utf-8"

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
    return ("/" + "/".join(parts)) if where == "body" else f"{where}:{'/'.join(parts)}"


async def validation_problem(_: Request, exc: Exception) -> Response:
    """400 for the first invalid parameter or field; its value is never repeated."""
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    pointer = _pointer(tuple(first.get("loc", ())))
    detail = f"{pointer}: {first.get('msg', 'invalid')}" if pointer else str(first.get("msg", "invalid"))
    return problem_response(400, "invalid-request", "Invalid request", detail, extra={"pointer": pointer})
