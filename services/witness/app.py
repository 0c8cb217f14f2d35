"""The witness's HTTP edge: c2sp.org/tlog-witness ``add-checkpoint`` and the monitoring checkpoint.

Statuses are the protocol's: 200 with cosignature lines, 400 malformed, 403 no valid log
signature, 404 unknown origin, 409 with the latest cosigned size (``text/x.tlog.size``), 422 a bad
proof or a fork; 413 for a body over the limit and 503 when the store is unavailable. Refusals
other than 409 are RFC 9457 problem details.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import Response
from prometheus_client import generate_latest

from sealtrail.core.cosignature import CosignatureSigner
from sealtrail.core.witness import MAX_BODY_BYTES, SIZE_MEDIA_TYPE
from sealtrail.errors import (
    BackpressureError,
    InvalidInputError,
    NotFoundError,
    SealtrailError,
    SignatureError,
    TooLargeError,
    VerificationError,
    WitnessSizeError,
)
from sealtrail.infra.problems import install_problem_handlers, problem_for, problem_response
from services.witness import metrics
from services.witness.config import LogConfig, apply_logs
from services.witness.ports import WitnessStore
from services.witness.service import Witness, wall_clock

NOTE_MEDIA_TYPE = "text/plain; charset=utf-8"


def refusal(error: SealtrailError) -> Response:
    """The tlog-witness answer to a refused request."""
    if isinstance(error, WitnessSizeError):
        # Set as a header: Starlette would append "; charset=utf-8" to a text/* media type.
        return Response(f"{error.size}\n".encode("ascii"), status_code=409,
                        headers={"Content-Type": SIZE_MEDIA_TYPE})
    if isinstance(error, SignatureError):
        return problem_response(403, "forbidden", "Checkpoint not signed by the log", str(error))
    if isinstance(error, NotFoundError):
        return problem_response(404, "not-found", "Unknown log", str(error))
    if isinstance(error, VerificationError):
        return problem_response(422, "verification-failed", "Checkpoint not consistent", str(error))
    return problem_for(error)


async def read_body(request: Request) -> bytes:
    """The request body, refused past :data:`MAX_BODY_BYTES` without reading further."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise TooLargeError(f"request body is larger than {MAX_BODY_BYTES} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise TooLargeError(f"request body is larger than {MAX_BODY_BYTES} bytes")
    return bytes(body)


def create_app(open_store: Callable[[], Awaitable[WitnessStore]], signer: CosignatureSigner, *,
               logs: Sequence[LogConfig] = (), clock: Callable[[], int] = wall_clock) -> FastAPI:
    """The witness app. At start it opens its store (closed at shutdown) and adds ``logs`` to it."""
    holder: list[Witness] = []

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        store = await open_store()
        try:
            await apply_logs(store, list(logs))
            holder.append(Witness(store=store, signer=signer, clock=clock))
            yield
        finally:
            await store.close()

    app = FastAPI(title="Sealtrail witness", lifespan=lifespan, openapi_url=None)
    install_problem_handlers(app)

    @app.post("/add-checkpoint")
    async def add_checkpoint(request: Request) -> Response:
        started = time.perf_counter()
        try:
            lines = await holder[0].add_checkpoint(await read_body(request))
            answer = Response(lines, media_type=NOTE_MEDIA_TYPE)
        except (InvalidInputError, NotFoundError, SignatureError, VerificationError, WitnessSizeError,
                BackpressureError) as e:
            answer = refusal(e)
        metrics.REQUESTS.labels(str(answer.status_code)).inc()
        metrics.SECONDS.observe(time.perf_counter() - started)
        return answer

    @app.get("/{origin_hash}/checkpoint")
    async def checkpoint(origin_hash: str) -> Response:
        note = await holder[0].latest(origin_hash)
        if note is None:
            raise NotFoundError("this witness cosigned no checkpoint of that log")
        return Response(note, media_type=NOTE_MEDIA_TYPE)

    @app.get("/healthz")
    async def healthz() -> Response:
        return Response('{"status":"ok"}', media_type="application/json")

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(generate_latest(), media_type="text/plain; version=0.0.4; charset=utf-8")

    return app
