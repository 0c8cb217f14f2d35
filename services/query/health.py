"""Liveness, readiness and Prometheus metrics of one query process (no authentication)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from services.query.deps import ServiceDep
from services.query.responses import PUBLIC_TAG, json_response

router = APIRouter(tags=[PUBLIC_TAG])


@router.get("/healthz", summary="Liveness")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: Kafka producer started and database reachable")
async def readyz(service: ServiceDep) -> Response:
    checks = await service.ready()
    ok = all(checks.values())
    return json_response({"status": "ok" if ok else "unavailable", **checks}, status=200 if ok else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(service: ServiceDep) -> Response:
    return Response(service.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")
