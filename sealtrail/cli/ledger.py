"""``sealtrail ledger`` and ``sealtrail admin signing-key ...``."""

from __future__ import annotations

import asyncio

import typer

DEFAULT_LEDGER_METRICS_PORT = 9101

signing_app = typer.Typer(help="Checkpoint signing keys of the ledger.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    from sealtrail.cli.admin import admin_group

    app.command("ledger")(ledger)
    admin_group(app).add_typer(signing_app, name="signing-key")


@signing_app.command("rotate")
def rotate_signing_key() -> None:
    """Make a new checkpoint key pair active; old checkpoints stay verifiable under the old keys."""
    from sealtrail.infra.postgres import connect, migrate
    from sealtrail.infra.settings import Settings
    from services.ledger.signing import rotate

    settings = Settings()

    async def go() -> None:
        async with connect(settings.require_database()) as conn:
            await migrate(conn)
            keys = await rotate(conn, key_dir=settings.signing_key_dir, name=settings.key_name)
        typer.echo(keys.signer.verifier().vkey())
        typer.echo(keys.cosigner.verifier().vkey())

    asyncio.run(go())


@signing_app.command("list")
def list_signing_keys() -> None:
    """Published verifier keys with their validity windows."""
    from sealtrail.infra.postgres import connect
    from sealtrail.infra.settings import Settings

    settings = Settings()

    async def go() -> None:
        async with connect(settings.require_database()) as conn:
            rows = await conn.fetch(
                "SELECT purpose, vkey, not_before, not_after FROM signing_keys ORDER BY not_before")
        for r in rows:
            until = r["not_after"].isoformat() if r["not_after"] else "now"
            typer.echo(f"{r['purpose']:10} {r['not_before'].isoformat()} .. {until}  {r['vkey']}")

    asyncio.run(go())


def ledger(
    host: str = typer.Option("127.0.0.1", help="address of the health and metrics endpoint"),
    port: int = typer.Option(DEFAULT_LEDGER_METRICS_PORT, help="port of /healthz, /readyz, /metrics"),
    max_records: int = typer.Option(5000, help="records per poll (the Merkle batch bound)"),
) -> None:
    """Run the ledger: sequence sealed events from Kafka into PostgreSQL and sign checkpoints."""
    import uvicorn

    from sealtrail.infra.logs import configure_logging
    from sealtrail.infra.settings import Settings
    from services.ledger import service as ledger_service

    settings = Settings()
    configure_logging(settings.log_level)
    svc = ledger_service.LedgerService(settings, max_records=max_records)
    app, status = ledger_service.health_app(svc)
    uvicorn.run(app, host=host, port=port, log_config=None, access_log=False)
    raise typer.Exit(status.code)
