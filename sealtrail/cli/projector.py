"""``sealtrail projector``: keep the query service's read models up to date."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from sealtrail.cli.serving import PORT_MAX, PORT_MIN

DEFAULT_PROJECTOR_METRICS_PORT = 9102


def register(app: typer.Typer) -> None:
    app.command("projector")(projector)


def projector(
    host: Annotated[str, typer.Option(help="address of the health and metrics endpoint")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=PORT_MIN, max=PORT_MAX, help="port of /healthz, /readyz, /metrics")] = (
        DEFAULT_PROJECTOR_METRICS_PORT),
    batch_entries: Annotated[int, typer.Option(min=1, help="entries per transaction")] = 5000,
    poll_interval: Annotated[float, typer.Option(min=0.01, help="seconds between polls when idle")] = 0.5,
    rebuild: Annotated[bool, typer.Option(help="truncate the read models, replay every log from 0")] = False,
    once: Annotated[bool, typer.Option(help="exit when caught up, without the HTTP endpoint")] = False,
) -> None:
    """Project committed log entries into analytics rollups, the subject index, sessions and tool history."""
    from sealtrail.cli.serving import AppRunner, error_exit, listen
    from sealtrail.errors import SealtrailError
    from sealtrail.infra.logs import configure_logging
    from sealtrail.infra.settings import Settings
    from services.projector import service as projector_service

    settings = Settings()
    configure_logging(settings.log_level)
    svc = projector_service.ProjectorService(settings, batch_entries=batch_entries,
                                             poll_interval_s=poll_interval, rebuild=rebuild, once=once)
    if once:
        try:
            asyncio.run(svc.run())
        except SealtrailError as e:
            raise error_exit(str(e)) from None
        typer.echo(f"projected {svc.projected} entries")
        return
    app, status = projector_service.health_app(svc)
    runner = AppRunner(app, listen(host, port))
    status.terminate = runner.stop  # a failed projector logs its reason, then the process exits 1
    runner.run()
    raise typer.Exit(status.code)
