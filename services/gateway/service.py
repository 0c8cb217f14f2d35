"""Running a gateway process: over Streamable HTTP (``sealtrail gateway``) or stdio (``sealtrail
gateway stdio``), with SIGHUP reloading the configuration without dropping sessions.

``sealtrail gateway reload`` finds the running gateways of a configuration file through the pid
files they write beside it (``.NAME-PORT.pid``) and sends each SIGHUP.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import uvicorn
import uvloop
from mcp.server.stdio import stdio_server

from services.gateway import config
from services.gateway.app import Runtime, build_app, start
from services.gateway.onewrite import OneWriteHttp
from services.gateway.proxy import build_server, initialization_options

log = logging.getLogger("sealtrail.gateway")


def pid_file(cfg: config.GatewayConfig, tag: str) -> Path:
    return cfg.path.parent / f".{cfg.path.stem}-{tag}.pid"


def running_pids(cfg_path: Path) -> list[int]:
    pids = []
    for f in sorted(cfg_path.parent.glob(f".{cfg_path.stem}-*.pid")):
        with contextlib.suppress(ValueError, OSError):
            pid = int(f.read_text().strip())
            os.kill(pid, 0)
            pids.append(pid)
    return pids


@contextlib.contextmanager
def _pid(cfg: config.GatewayConfig, tag: str) -> Iterator[Path]:
    path = pid_file(cfg, tag)
    path.write_text(f"{os.getpid()}\n")
    try:
        yield path
    finally:
        with contextlib.suppress(OSError):
            path.unlink()


def _on_sighup(rt: Runtime) -> None:
    asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, rt.reload)


class _Server(uvicorn.Server):
    """uvicorn re-raises SIGTERM/SIGINT after its shutdown, which would end the process before the
    recorder flushes its queue into the spool; the gateway stops the server itself instead."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def run_http(cfg: config.GatewayConfig) -> None:
    """Serve over Streamable HTTP on uvloop: libuv's event loop, sockets and timers in C cost the
    gateway less CPU per call than asyncio's selector loop (every call crosses three sockets)."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve_http(cfg))


async def serve_http(cfg: config.GatewayConfig) -> None:
    rt = await start(cfg, spool_tag=f"http-{cfg.port}")
    try:
        _on_sighup(rt)
        server = _Server(uvicorn.Config(build_app(rt), host=cfg.host, port=cfg.port, log_level="warning",
                                        access_log=False, lifespan="on", http=OneWriteHttp))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda: setattr(server, "should_exit", True))
        with _pid(cfg, str(cfg.port)):
            log.info("gateway %s serving agents at http://%s/mcp under policy %s version %s", cfg.gateway_id,
                     cfg.listen, cfg.policy_id, rt.gateway.version)
            await server.serve()
    finally:
        await rt.close()


async def serve_stdio(cfg: config.GatewayConfig, agent: str) -> None:
    if agent not in cfg.agents:
        raise config.GatewayConfigError(f"--agent {agent!r}: no [agents.{agent}] in {cfg.path} "
                                        f"(agents: {sorted(cfg.agents)})")
    rt = await start(cfg, spool_tag=f"stdio-{os.getpid()}")
    try:
        _on_sighup(rt)
        from sealtrail.sdk.events import uuid7

        server = build_server(rt.gateway, rt.sessions, stdio_agent=agent, stdio_session=f"stdio-{uuid7()}")
        with _pid(cfg, f"stdio{os.getpid()}"):
            async with stdio_server() as (read, write):
                await server.run(read, write, initialization_options(server))
    finally:
        await rt.close()
