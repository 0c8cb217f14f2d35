"""The worker app: health, readiness and the exit status of a worker that fails on its own."""

from __future__ import annotations

import asyncio

import httpx

from sealtrail.infra.workerapp import worker_app


async def test_worker_runs_for_the_apps_lifetime_and_reports_readiness() -> None:
    """The worker starts with the app, /readyz follows its readiness, and stopping the app stops it."""
    stopped = asyncio.Event()
    state = {"ready": False}

    async def run() -> None:
        state["ready"] = True
        await stopped.wait()

    app, status = worker_app(name="w", run=run, stop=stopped.set,
                             readiness=lambda: (state["ready"], {"extra": 1}))
    async with app.router.lifespan_context(app):
        await asyncio.sleep(0)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://w") as client:
            assert (await client.get("/healthz")).json() == {"status": "ok"}
            ready = await client.get("/readyz")
            assert ready.status_code == 200 and ready.json() == {"ready": True, "extra": 1}
            state["ready"] = False
            assert (await client.get("/readyz")).status_code == 503
            assert (await client.get("/metrics")).status_code == 200
    assert stopped.is_set()
    assert status.code == 0


async def test_a_failing_worker_ends_the_process_with_status_1() -> None:
    """A worker that raises sets the exit status to 1 and asks the process to terminate."""
    terminated = asyncio.Event()

    async def run() -> None:
        raise RuntimeError("boom")

    app, status = worker_app(name="w", run=run, stop=lambda: None, readiness=lambda: (False, {}),
                             terminate=terminated.set)
    async with app.router.lifespan_context(app):
        await asyncio.wait_for(terminated.wait(), timeout=5)
    assert status.code == 1
