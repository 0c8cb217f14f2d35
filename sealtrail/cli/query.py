"""``sealtrail query``, ``sealtrail admin tenant retention`` and ``sealtrail admin retention run``.

The query service reads ``SEALTRAIL_DATABASE_URL``, ``SEALTRAIL_KAFKA_BOOTSTRAP``, the KEK
(``SEALTRAIL_KEK_FILE``) and its own Ed25519 key for erasure receipts
(``SEALTRAIL_SERVICE_KEY_FILE``, made with ``sealtrail admin receipt-key generate``).
"""

from __future__ import annotations

from typing import Annotated

import typer

from sealtrail.cli.admin import DataDirOpt
from sealtrail.cli.serving import PORT_MAX, PORT_MIN

DEFAULT_QUERY_PORT = 8082

retention_app = typer.Typer(help="Payload retention: expire period keys past each tenant's retention.",
                            no_args_is_help=True)


def register(app: typer.Typer) -> None:
    from sealtrail.cli.admin import admin_group, tenant_app

    app.command("query")(query)
    tenant_app.command("retention")(tenant_retention)
    admin_group(app).add_typer(retention_app, name="retention")


def query(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=PORT_MIN, max=PORT_MAX, help="port to listen on")] = DEFAULT_QUERY_PORT,
    workers: Annotated[int, typer.Option(min=1, help="worker processes")] = 1,
) -> None:
    """Run the query API: investigations, analytics, proofs, export and erasure."""
    from sealtrail.cli.services import HttpService, serve

    serve(HttpService(name="query", factory="services.query.app:create_app_from_env",
                      default_port=DEFAULT_QUERY_PORT, help=""), host=host, port=port, workers=workers)


def tenant_retention(
    name: Annotated[str, typer.Argument(help="tenant id")],
    months: Annotated[int | None, typer.Option("--months", min=1, help="keep payloads this many whole "
                                               "months")] = None,
    keep: Annotated[bool, typer.Option("--keep-forever", help="keep payloads until erased")] = False,
    data_dir: DataDirOpt = None,
) -> None:
    """Set a tenant's payload retention (the shredder expires older months' keys).

    With --data-dir, in the data directory of sealtrail serve (also while it runs; its
    shredder applies the setting within the hour)."""
    if (months is None) == (not keep):
        raise typer.BadParameter("give exactly one of --months N and --keep-forever")
    from sealtrail.cli.admin import data_dir_database, run_command
    from sealtrail.errors import NotFoundError
    from sealtrail.infra.postgres import connect, migrate
    from sealtrail.infra.settings import Settings

    async def updated() -> int:
        if data_dir is not None:
            async with data_dir_database(data_dir) as db:
                return await db.write(lambda c: c.execute(
                    "UPDATE tenants SET retention_months = ? WHERE tenant_id = ?", (months, name)).rowcount)
        async with connect(Settings().require_database()) as conn:
            await migrate(conn)
            status = await conn.execute("UPDATE tenants SET retention_months = $2 WHERE tenant_id = $1",
                                        name, months)
        return int(status.rsplit(" ", 1)[1])

    async def go() -> None:
        if await updated() == 0:
            raise NotFoundError(f"no tenant {name}")
        typer.echo(f"tenant {name}: payloads kept {f'{months} months' if months else 'until erased'}")

    run_command(go)


@retention_app.command("run")
def retention_run(
    tenant: Annotated[str | None, typer.Option("--tenant", help="only this tenant")] = None,
) -> None:
    """Expire every period past retention now and log a retention event for each."""
    from sealtrail.cli.admin import run_command

    async def go() -> None:
        from sealtrail.infra.settings import Settings
        from services.query.service import run_once_from_settings

        for done in await run_once_from_settings(Settings(), tenant):
            typer.echo(f"{done.tenant} {done.period}: period key {done.period_key_id} expired, "
                       f"{done.payloads_deleted} payloads deleted, event {done.event_id}")

    run_command(go)
