"""``sealtrail ledger`` and ``sealtrail admin signing-key ...``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sealtrail.cli.admin import DataDirOpt, data_dir_database, run_command
from sealtrail.cli.serving import PORT_MAX, PORT_MIN

DEFAULT_LEDGER_METRICS_PORT = 9101

signing_app = typer.Typer(help="Checkpoint signing keys of the ledger.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    from sealtrail.cli.admin import admin_group

    app.command("ledger")(ledger)
    admin_group(app).add_typer(signing_app, name="signing-key")


@signing_app.command("rotate")
def rotate_signing_key(data_dir: DataDirOpt = None) -> None:
    """Make a new checkpoint key pair active; old checkpoints stay verifiable under the old keys.

    With --data-dir, on the SQLite database of sealtrail serve (it may be running) instead of PostgreSQL.
    """
    from sealtrail.infra.settings import Settings
    from services.ledger.signing import CheckpointKeys, rotate

    async def go() -> CheckpointKeys:
        if data_dir is not None:
            from sealtrail.cli.embedded.datadir import KEY_NAME, DataDir
            from services.ledger.sqlite.checkpoints import SqliteCheckpointStore

            async with data_dir_database(data_dir) as db:
                return await rotate(SqliteCheckpointStore(db=db), key_dir=DataDir(data_dir).keys, name=KEY_NAME)
        from sealtrail.infra.postgres import connect, migrate

        settings = Settings()
        async with connect(settings.require_database()) as conn:
            await migrate(conn)
            from services.ledger.postgres.checkpoints import PostgresSigningKeys

            return await rotate(PostgresSigningKeys(conn), key_dir=settings.signing_key_dir,
                                name=settings.key_name)

    keys = run_command(go)
    typer.echo(keys.signer.verifier().vkey())
    typer.echo(keys.cosigner.verifier().vkey())


@signing_app.command("list")
def list_signing_keys(data_dir: DataDirOpt = None) -> None:
    """Published verifier keys with their validity windows (with --data-dir: of sealtrail serve).

    With --data-dir the list is the one GET /v1/keys publishes, the query API's erasure-receipt
    key included. Without it, the rows of PostgreSQL's signing_keys; the query service's
    erasure-receipt key lives in its own key file and is published by its GET /v1/keys."""
    from sealtrail.infra.settings import Settings

    sql = "SELECT purpose, vkey, not_before, not_after FROM signing_keys ORDER BY not_before, purpose"

    async def go() -> list[tuple[str, str, str, str | None]]:
        if data_dir is not None:
            async with data_dir_database(data_dir) as db:
                rows: list[tuple[str, str, str, str | None]] = await db.read(
                    lambda c: [tuple(r) for r in c.execute(sql)])
            return [*rows, ("erasure-receipt", _erasure_receipt_vkey(data_dir), "-", None)]
        from sealtrail.infra.postgres import connect

        async with connect(Settings().require_database()) as conn:
            return [(r["purpose"], r["vkey"], r["not_before"].isoformat(),
                     r["not_after"].isoformat() if r["not_after"] else None) for r in await conn.fetch(sql)]

    for purpose, vkey, not_before, not_after in run_command(go):
        typer.echo(f"{purpose:15} {not_before} .. {not_after or 'now'}  {vkey}")


def _erasure_receipt_vkey(data_dir: Path) -> str:
    """The vkey of the key the query API of ``sealtrail serve`` signs erasure receipts with."""
    from sealtrail.cli.embedded.datadir import DataDir
    from sealtrail.infra.servicekey import load_service_signer

    return load_service_signer(DataDir(data_dir).query_key, what="query service key").verifier().vkey()


def ledger(
    host: str = typer.Option("127.0.0.1", help="address of the health and metrics endpoint"),
    port: int = typer.Option(DEFAULT_LEDGER_METRICS_PORT, min=PORT_MIN, max=PORT_MAX,
                             help="port of /healthz, /readyz, /metrics"),
    max_records: int = typer.Option(5000, help="records per poll (the Merkle batch bound)"),
    witness_config: Annotated[Path | None, typer.Option(
        "--witness-config", envvar="SEALTRAIL_WITNESS_CONFIG",
        help="TOML file of the witnesses every checkpoint is submitted to, and the quorum (docs/witness.md)")
    ] = None,
) -> None:
    """Run the ledger: sequence sealed events from Kafka into PostgreSQL and sign checkpoints."""
    from sealtrail.cli.serving import AppRunner, listen
    from sealtrail.infra.logs import configure_logging
    from sealtrail.infra.settings import Settings
    from sealtrail.infra.witnessconfig import load_witness_config
    from services.ledger import service as ledger_service

    settings = Settings()
    configure_logging(settings.log_level)
    witnesses = None if witness_config is None else load_witness_config(witness_config)
    svc = ledger_service.LedgerService(settings, max_records=max_records, witnesses=witnesses)
    app, status = ledger_service.health_app(svc)
    runner = AppRunner(app, listen(host, port))
    status.terminate = runner.stop  # a failed ledger logs its reason, then the process exits 1
    runner.run()
    raise typer.Exit(status.code)
