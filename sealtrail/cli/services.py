"""``sealtrail <service>``: run one HTTP service of the production deployment.

Each service is one row of :data:`HTTP_SERVICES`: its command name, the import path of an app
factory that builds :class:`~sealtrail.infra.settings.Settings` from the environment and
configures JSON logs (so worker processes do too), and its default port. Adding the query API or
the projector is adding a row.

With one worker the app is built and served in this process (:mod:`sealtrail.cli.serving`): a port
in use or a start-up error (a missing setting or key) is one ``error:`` line and exit 1. With
several, uvicorn starts the workers from the factory's import path, and each logs its start-up
error as one JSON line (:mod:`sealtrail.infra.logs` shortens tracebacks to their reason).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

import typer

from sealtrail.cli.serving import PORT_MAX, PORT_MIN


@dataclass(frozen=True, slots=True)
class HttpService:
    name: str
    factory: str
    default_port: int
    help: str


HTTP_SERVICES: tuple[HttpService, ...] = (
    HttpService(
        name="ingest", factory="services.ingest.app:create_app_from_env", default_port=8080,
        help="Run ingest: authenticate gateways, validate and seal events, publish them to Kafka.",
    ),
)


def register(app: typer.Typer) -> None:
    for service in HTTP_SERVICES:
        app.command(service.name, help=service.help)(_command(service))


def _command(service: HttpService) -> Callable[..., None]:
    def run(
        host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
        port: Annotated[int, typer.Option(min=PORT_MIN, max=PORT_MAX, help="port to listen on")] = (
            service.default_port),
        workers: Annotated[int, typer.Option(min=1, help="worker processes")] = 1,
    ) -> None:
        serve(service, host=host, port=port, workers=workers)

    run.__name__ = service.name
    return run


def serve(service: HttpService, *, host: str, port: int, workers: int) -> None:
    """Run ``service`` under uvicorn until interrupted."""
    import importlib

    import uvicorn

    from sealtrail.cli.serving import AppRunner, error_exit, listen
    from sealtrail.errors import SealtrailError
    from sealtrail.infra.logs import configure_logging
    from sealtrail.infra.settings import Settings

    configure_logging(Settings().log_level)
    if workers > 1:
        uvicorn.run(service.factory, factory=True, host=host, port=port, workers=workers,
                    log_config=None, access_log=False, server_header=False)
        return
    sock = listen(host, port)
    module, _, name = service.factory.partition(":")
    try:
        app = getattr(importlib.import_module(module), name)()
    except SealtrailError as e:
        sock.close()
        raise error_exit(str(e)) from None
    AppRunner(app, sock).run()
