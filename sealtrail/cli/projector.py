"""``sealtrail projector``: keep the query service's read models up to date."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from sealtrail.cli.serving import PORT_MAX, PORT_MIN

if TYPE_CHECKING:
    from services.projector.ports import ReadModelReport

DEFAULT_PROJECTOR_METRICS_PORT = 9102


def register(app: typer.Typer) -> None:
    from sealtrail.cli.admin import admin_group

    app.command("projector")(projector)
    admin_group(app).command("check-read-models")(check_read_models)


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


def check_read_models(
    data_dir: Annotated[Path | None, typer.Option(
        "--data-dir", envvar="SEALTRAIL_DATA_DIR",
        help="check the data directory of `sealtrail serve` (SQLite) instead of PostgreSQL")] = None,
    batch_entries: Annotated[int, typer.Option(min=1, help="entries per rebuild step")] = 5000,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Check every stored copy against the signed log: each entry's columns and leaf, and every read
    model (rollups, sessions, tool definitions, subject index) rebuilt from the entries in a private
    snapshot. Prints each difference; exits 1 when there is one. Changes nothing."""
    from sealtrail.cli.admin import run_command

    report = run_command(lambda: _check(data_dir, batch_entries))
    if as_json:
        typer.echo(json.dumps(_report_json(report), indent=2))
    else:
        for line in _report_lines(report):
            typer.echo(line)
    if not report.ok:
        raise typer.Exit(1)


async def _check(data_dir: Path | None, batch_entries: int) -> ReadModelReport:
    if data_dir is not None:
        from sealtrail.cli.admin import data_dir_database
        from services.projector.sqlite import SqliteProjectorStore

        async with data_dir_database(data_dir) as db:
            return await SqliteProjectorStore(db=db).check(batch_entries=batch_entries)
    from sealtrail.infra.postgres import create_pool
    from sealtrail.infra.settings import Settings
    from services.projector.postgres import PostgresProjectorStore

    pool = await create_pool(Settings().require_database(), min_size=1, max_size=1,
                             application_name="sealtrail-check-read-models")
    try:
        return await PostgresProjectorStore(pool=pool).check(batch_entries=batch_entries)
    finally:
        await pool.close()


def _report_json(report: ReadModelReport) -> dict[str, Any]:
    return {"ok": report.ok, "positions": report.positions, "entries_checked": report.entries_checked,
            "entries": [{"log": e.log_id, "index": e.idx, "fields": list(e.fields)} for e in report.entries],
            "models": [{"table": m.table, "only_stored": m.only_stored, "only_rebuilt": m.only_rebuilt,
                        "examples": list(m.examples)} for m in report.models]}


def _report_lines(report: ReadModelReport) -> list[str]:
    lines = [f"entry {e.idx} of log {e.log_id}: stored {', '.join(e.fields)} disagree with the signed entry"
             for e in report.entries]
    for m in report.models:
        lines.append(f"read model {m.table}: {m.only_stored} stored rows not in the rebuild, "
                     f"{m.only_rebuilt} rebuilt rows not stored")
        lines += [f"  {x}" for x in m.examples]
    positions = ", ".join(f"{k} < {v}" for k, v in sorted(report.positions.items())) or "no log projected yet"
    verdict = "OK" if report.ok else f"{len(report.entries) + len(report.models)} difference(s)"
    lines.append(f"{verdict}: {report.entries_checked} entries checked; read models rebuilt up to {positions}")
    return lines
