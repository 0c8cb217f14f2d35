"""HTTP routes of ingest. Errors are raised as Sealtrail errors and answered by the problem table."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import HTTPBearer
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Receive, Send
from starlette.types import Scope as AsgiScope

from sealtrail.core.jsonbody import read_events
from sealtrail.core.validation import Rejection
from sealtrail.errors import InvalidInputError, SealtrailError, TooLargeError, UnsupportedMediaTypeError
from sealtrail.infra.auth import Scope
from sealtrail.infra.problems import PROBLEM_JSON, PROBLEM_TABLE, problem_for, problem_response
from services.ingest.models import BatchRejected, BatchResult, EventBatch, Keys, Problem
from services.ingest.sealer import PreparedBatch
from services.ingest.service import IngestService

log = logging.getLogger("sealtrail.ingest")
router = APIRouter()
_bearer = HTTPBearer(auto_error=False, description="API key `st_<key_id>_<secret>`")


async def _service(request: Request) -> IngestService:
    # async: FastAPI runs a plain ``def`` dependency in a worker thread, a hop per request.
    service: IngestService = request.app.state.ingest
    return service


ServiceDep = Annotated[IngestService, Depends(_service)]


# Declares the bearer scheme in OpenAPI; the header itself is checked inside the handler so that
# a 401 is counted in the metrics like every other answer.
BearerDoc = Annotated[Any, Depends(_bearer)]

_PROBLEMS: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem, "content": {PROBLEM_JSON: {}}, "description": text}
    for status, text in (
        (400, "The body is not a JSON object {\"events\": [...]}"),
        (401, "Missing, malformed, unknown, revoked or expired API key"),
        (403, "The key's role lacks events:write"),
        (413, "Body or batch past the documented limits"),
        (415, "The body is not application/json"),
        (429, "Too many batches in flight (Retry-After)"),
        (503, "Kafka did not acknowledge; nothing accepted (Retry-After)"),
    )
}
_PROBLEMS[422] = {"model": BatchRejected, "content": {PROBLEM_JSON: {}}, "description": "No event accepted"}


@router.post(
    "/v1/events", status_code=202, response_model=BatchResult, responses=_PROBLEMS,
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/json": {"schema": EventBatch.model_json_schema()}}}},
    summary="Submit a batch of events",
)
async def post_events(request: Request, service: ServiceDep, _: BearerDoc) -> Response:
    """Validate each event, seal the accepted ones and answer once Kafka acknowledged them all."""
    return await handle_events(request, service)


def events_endpoint(service: Callable[[], IngestService]) -> Callable[[Request], Awaitable[Response]]:
    """``POST /v1/events`` as a plain Starlette endpoint over the service ``service()`` returns once
    started: the same handling and answers as :func:`post_events` without FastAPI's dependency
    solving and second middleware stack, which cost more than sealing a one-event batch. The
    standalone ingest routes its ``/v1/events`` here; the route above documents it."""

    async def endpoint(request: Request) -> Response:
        try:
            return await handle_events(request, service())
        except Exception as e:  # what FastAPI's handler table answers for an unexpected error
            return _internal(e)

    return endpoint


def events_asgi(service: Callable[[], IngestService]) -> ASGIApp:
    """``POST /v1/events`` as a bare ASGI app over the service ``service()`` returns once started:
    the answers of :func:`events_endpoint` without a Starlette ``Request`` or router, headers read
    from the scope and the body from ``receive``. The embedded default calls it for every
    ``POST /v1/events`` before its router (the route above documents it)."""

    async def app(scope: AsgiScope, receive: Receive, send: Send) -> None:
        wanted: dict[bytes, str] = {}
        for name, value in scope["headers"]:
            if name in _EVENT_HEADERS and name not in wanted:  # the first of repeated headers, as Starlette's
                wanted[name] = value.decode("latin-1")
        try:
            response = await answer_events(service(), wanted.get(b"authorization"), wanted.get(b"content-type"),
                                           wanted.get(b"content-length"), _chunks(receive))
        except Exception as e:  # what FastAPI's handler table answers for an unexpected error
            response = _internal(e)
        await response(scope, receive, send)

    return app


_EVENT_HEADERS = frozenset((b"authorization", b"content-type", b"content-length"))


async def _chunks(receive: Receive) -> AsyncIterator[bytes]:
    """The request body's chunks from ``receive``, as ``Request.stream`` gives them."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        if message["type"] == "http.request":
            yield message.get("body", b"")
            if not message.get("more_body", False):
                return


def _internal(error: Exception) -> Response:
    log.error("unexpected error", extra={"error_type": type(error).__name__})
    return problem_response(500, "internal", "Internal error", "the server failed to handle the request")


async def handle_events(request: Request, service: IngestService) -> Response:
    """The answer to one ``POST /v1/events``: 202 with receipts once published, else a problem."""
    headers = request.headers
    return await answer_events(service, headers.get("authorization"), headers.get("content-type"),
                               headers.get("content-length"), request.stream())


async def answer_events(service: IngestService, authorization: str | None, content_type: str | None,
                        content_length: str | None, body: AsyncIterator[bytes]) -> Response:
    """The answer to one ``POST /v1/events`` given its headers and its body's chunks."""
    started = time.perf_counter()
    status = 500
    try:
        principal = await service.authenticator.authenticate(authorization)
        principal.require(Scope.EVENTS_WRITE)
        _check_media_type(content_type)
        raw_events = _parse_batch(await read_chunks(content_length, body, service.options.max_body_bytes),
                                  service.options.max_batch_events)
        batch = await service.submit(principal, raw_events)
        response = _answer(batch)
        status = response.status_code
        if batch.rejected or log.isEnabledFor(logging.DEBUG):
            log.log(logging.INFO if batch.rejected else logging.DEBUG, "batch", extra={
                "tenant": principal.tenant_id, "key_id": principal.key_id, "accepted": len(batch.accepted),
                "rejected": len(batch.rejected), "ms": round((time.perf_counter() - started) * 1000, 1)})
        return response
    except SealtrailError as e:
        status = _status_of(e)
        return problem_for(e)
    finally:
        service.metrics.request_done(status, time.perf_counter() - started)


@router.get("/v1/keys", response_model=Keys, summary="Verifier keys of the receipts")
async def keys(service: ServiceDep) -> Keys:
    """The C2SP verifier key that signs this service's receipts (public)."""
    return Keys.model_validate({"receipt": [{"vkey": service.vkey}]})


@router.get("/healthz", summary="Liveness")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: Kafka producer started and not failing, database reachable")
async def readyz(service: ServiceDep) -> Response:
    checks = await service.ready()
    ok = all(checks.values())
    return Response(orjson.dumps({"status": "ok" if ok else "unavailable", **checks}),
                    status_code=200 if ok else 503, media_type="application/json")


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(service: ServiceDep) -> Response:
    return Response(service.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")


async def read_body(request: Request, limit: int) -> bytes:
    return await read_chunks(request.headers.get("content-length"), request.stream(), limit)


async def read_chunks(declared: str | None, chunks: AsyncIterator[bytes], limit: int) -> bytes:
    """The body from its chunks: 413 when ``declared`` (Content-Length) or the bytes read pass ``limit``."""
    if declared is not None:
        if not declared.isdigit():
            raise InvalidInputError("Content-Length is not a number")
        if int(declared) > limit:
            raise TooLargeError(f"body of {declared} bytes is over the limit of {limit} bytes")
    read: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise TooLargeError(f"body is over the limit of {limit} bytes")
        read.append(chunk)
    return b"".join(read)


def _parse_batch(body: bytes, max_events: int) -> list[object]:
    events = read_events(body)
    if len(events) > max_events:
        raise TooLargeError(f"batch of {len(events)} events is over the limit of {max_events}",
                            pointer="/events")
    return events


def _check_media_type(content_type: str | None) -> None:
    """JSON bodies only: ``application/json`` (any parameters), or an ``application/*+json`` type."""
    media = (content_type or "").partition(";")[0].strip().lower()
    if media != "application/json" and not (media.startswith("application/") and media.endswith("+json")):
        raise UnsupportedMediaTypeError("the body must be application/json", pointer="header:Content-Type")


def _rejection(r: Rejection) -> dict[str, Any]:
    return {"index": r.index, "event_id": r.event_id, "type": r.type, "title": r.title,
            "detail": r.detail, "pointer": r.pointer}


def _answer(batch: PreparedBatch) -> Response:
    accepted = [{"event_id": a.event_id, "log": a.log, "receipt": a.receipt} for a in batch.accepted]
    rejected = [_rejection(r) for r in batch.rejected]
    if accepted:
        return Response(orjson.dumps({"accepted": accepted, "rejected": rejected}), status_code=202,
                        media_type="application/json")
    detail = f"none of the {len(rejected)} events was accepted" if rejected else "the batch holds no events"
    return problem_response(422, "batch-rejected", "No event accepted", detail,
                            extra={"accepted": [], "rejected": rejected})


def _status_of(error: SealtrailError) -> int:
    return next((status for kind, status, _, _ in PROBLEM_TABLE if isinstance(error, kind)), 500)
