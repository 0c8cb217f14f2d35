"""``sealtrail <service>``: run one HTTP service of the production deployment.

Each service is one row of :data:`HTTP_SERVICES`: its command name, the import path of an app
factory that builds :class:`~sealtrail.infra.settings.Settings` from the environment and
configures JSON logs (so worker processes do too), and its default port. Adding the query API or
the projector is adding a row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

import typer


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
        port: Annotated[int, typer.Option(help="port to listen on")] = service.default_port,
        workers: Annotated[int, typer.Option(min=1, help="worker processes")] = 1,
    ) -> None:
        serve(service, host=host, port=port, workers=workers)

    run.__name__ = service.name
    return run


def serve(service: HttpService, *, host: str, port: int, workers: int) -> None:
    """Run ``service`` under uvicorn until interrupted."""
    import uvicorn

    from sealtrail.infra.logs import configure_logging
    from sealtrail.infra.settings import Settings

    configure_logging(Settings().log_level)
    uvicorn.run(service.factory, factory=True, host=host, port=port, workers=workers,
                log_config=None, access_log=False, server_header=False)
