"""``sealtrail gateway credential|health|server``: stored upstream credentials, health checks and
server status (see docs/gateway.md).

  sealtrail gateway credential set SERVER (--bearer | --header NAME | --env NAME) [--from-file F]
  sealtrail gateway credential rotate SERVER [--from-file F]   check with the new value, then switch
  sealtrail gateway credential list [SERVER]                   names, versions, last check; no values
  sealtrail gateway health [SERVER]                            check now (exit 1 when one fails)
  sealtrail gateway server disable|enable SERVER --reason TEXT
  sealtrail gateway server list | history SERVER

Secrets are read from stdin or --from-file, never from the command line. Each change and check is
recorded in the ledger like the gateway's own (``credential_rotation``, ``health_check``,
``server_status``).
"""

from __future__ import annotations

import asyncio
import getpass
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

if TYPE_CHECKING:
    from sealtrail.core.sealing import Kek
    from services.gateway.config import GatewayConfig
    from services.gateway.health import HealthMonitor
    from services.gateway.ports import GatewayStore

credential_app = typer.Typer(help="Upstream credentials, sealed under the KEK in the state database.",
                             no_args_is_help=True)
server_app = typer.Typer(help="Enable or disable upstream servers (kept in the state database).", no_args_is_help=True)
ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="the gateway's TOML configuration")]
ByOpt = Annotated[str, typer.Option("--by", help="who makes the change (recorded in the sealed payload)")]
JsonOpt = Annotated[bool, typer.Option("--json")]
Job = Callable[["GatewayStore", "HealthMonitor"], Awaitable[Any]]


def register(gateway_app: typer.Typer) -> None:
    gateway_app.add_typer(credential_app, name="credential")
    gateway_app.add_typer(server_app, name="server")
    gateway_app.command("health")(health)


def _load(path: Path) -> GatewayConfig:
    from services.gateway import config

    try:
        return config.load(path)
    except config.GatewayConfigError as e:
        _fail(str(e), 2)


def _fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _run(cfg: GatewayConfig, job: Job, *, kek: bool = False) -> Any:
    """Run ``job`` with the state store and a health monitor that records through the ledger client."""
    from sealtrail.errors import SealtrailError
    from sealtrail.sdk.client import SealtrailClient
    from services.gateway.app import open_store, read_token, spool_dir
    from services.gateway.credentials import load_kek_file
    from services.gateway.health import HealthMonitor

    async def main() -> Any:
        key: Kek | None = load_kek_file(cfg.kek_file) if kek or cfg.kek_file is not None else None
        store = await open_store(cfg.state_database)
        try:
            async with SealtrailClient(cfg.ledger.url, read_token(cfg), spool_dir=spool_dir(cfg, "cli"),
                                       attempts=2) as client:
                return await job(store, HealthMonitor(cfg, store, client.send, kek=key))
        finally:
            await store.close()

    try:
        return asyncio.run(main())
    except SealtrailError as e:
        _fail(str(e))


def _secret(from_file: Path | None) -> str:
    if from_file is not None:
        try:
            return from_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            _fail(f"--from-file: cannot read {from_file}: {getattr(e, 'strerror', None) or e}", 2)
    if sys.stdin.isatty():
        return getpass.getpass("secret (not echoed): ")
    return sys.stdin.read()


@credential_app.command("set")
def credential_set(server: str, config: ConfigOpt,
                   bearer: Annotated[bool, typer.Option("--bearer", help="send it as Authorization: Bearer")] = False,
                   header: Annotated[str | None, typer.Option(help="send it in this HTTP header")] = None,
                   env: Annotated[str | None, typer.Option(help="the stdio command's variable")] = None,
                   from_file: Annotated[Path | None, typer.Option("--from-file", help="read it from this file")] = None,
                   by: ByOpt = "cli") -> None:
    """Store SERVER's credential (read from stdin or --from-file) as its current one at once."""
    from services.gateway import credentials

    cfg = _load(config)
    chosen = [k for k, v in (("bearer", bearer), ("header", header), ("env", env)) if v]
    if len(chosen) != 1:
        _fail("give exactly one of --bearer, --header NAME or --env NAME", 2)
    secret = _secret(from_file)

    async def job(store: GatewayStore, monitor: HealthMonitor) -> Any:
        assert monitor.kek is not None
        return await credentials.set_credential(store, monitor.kek, monitor.record,
                                                credentials.server_of(cfg, server), kind=chosen[0],  # type: ignore[arg-type]
                                                name=header or env, secret=secret, by=by)

    row = _run(cfg, job, kek=True)
    typer.echo(f"credential {credentials.label(row)} stored ({row.kind} {row.name}); it is current now")


@credential_app.command("rotate")
def credential_rotate(server: str, config: ConfigOpt,
                      from_file: Annotated[Path | None, typer.Option("--from-file")] = None,
                      reason: Annotated[str, typer.Option(help="scheduled, suspected_compromise or manual")] = "manual",
                      by: ByOpt = "cli", as_json: JsonOpt = False) -> None:
    """Store a new value as pending, health-check SERVER with it, switch only if the check passes."""
    from services.gateway import credentials

    cfg = _load(config)
    secret = _secret(from_file)
    row, report = _run(cfg, lambda _, monitor: monitor.rotate(server, secret, by=by, reason=reason), kek=True)
    if as_json:
        typer.echo(json.dumps({"credential": credentials.public(row), "check": report.public()}))
        return
    typer.echo(f"credential {credentials.label(row)} is current; health check: {report.status} "
               f"in {report.latency_ms} ms")


@credential_app.command("list")
def credential_list(config: ConfigOpt, server: Annotated[str | None, typer.Argument()] = None,
                    as_json: JsonOpt = False) -> None:
    """Every stored version: names, versions, states and the last check made with each; never values."""
    from services.gateway import credentials

    cfg = _load(config)
    rows = [credentials.public(r) for r in _run(cfg, lambda store, _: store.list_credentials(server))]
    if as_json:
        typer.echo(json.dumps({"credentials": rows}))
        return
    for r in rows:
        checked = "never checked" if r["checked_at"] is None else \
            f"checked {_when(r['checked_at'])} {r['check_status']}"
        typer.echo(f"{r['credential_id']:24} {r['state']:8} {r['kind']:6} {r['name']:24} {checked}")


def health(config: ConfigOpt, server: Annotated[str | None, typer.Argument()] = None, as_json: JsonOpt = False) -> None:
    """Check SERVER (or every server) now: connect, initialize with the stored credential, list tools."""
    cfg = _load(config)
    names = [server] if server else list(cfg.servers)

    async def job(_: GatewayStore, monitor: HealthMonitor) -> Any:
        return [await monitor.check(name) for name in names]

    reports = _run(cfg, job)
    if as_json:
        typer.echo(json.dumps({"checks": [r.public() for r in reports]}))
    else:
        for r in reports:
            typer.echo(f"{r.server:20} {r.status:20} {r.state:9} {r.latency_ms:6} ms  {r.message}")
    if any(r.status != "ok" for r in reports):
        raise typer.Exit(1)


@server_app.command("disable")
def server_disable(server: str, config: ConfigOpt, reason: Annotated[str, typer.Option()], by: ByOpt = "cli") -> None:
    """Refuse calls to SERVER (registration, credentials, pins and history stay)."""
    _change(config, server, "inactive", reason, by)


@server_app.command("enable")
def server_enable(server: str, config: ConfigOpt, reason: Annotated[str, typer.Option()], by: ByOpt = "cli") -> None:
    """Accept calls to SERVER again."""
    _change(config, server, "active", reason, by)


def _change(config: Path, server: str, state: str, reason: str, by: str) -> None:
    from services.gateway import status

    cfg = _load(config)
    if server not in cfg.servers:
        _fail(f"no server {server!r} in {cfg.path} (servers: {sorted(cfg.servers)})", 2)
    _run(cfg, lambda store, monitor: status.change_state(store, monitor.record, server=server,
                                                         state=state, reason=reason, by=by))  # type: ignore[arg-type]
    typer.echo(f"server {server} {'enabled' if state == 'active' else 'disabled'} (running gateways follow within "
               f"gateway.key_cache_seconds)")


@server_app.command("list")
def server_list(config: ConfigOpt, as_json: JsonOpt = False) -> None:
    """Each server's status, health and current credential version."""
    from services.gateway.admin import overview

    cfg = _load(config)
    rows = _run(cfg, lambda store, _: overview(store, list(cfg.servers)))
    if as_json:
        typer.echo(json.dumps({"servers": rows}))
        return
    for r in rows:
        cred = "no credential" if r["credential_version"] is None else f"credential v{r['credential_version']}"
        typer.echo(f"{r['server']:20} {r['state']:8} {r['health']:9} {cred}"
                   + (f"  disabled: {r['reason']}" if r["reason"] else ""))


@server_app.command("history")
def server_history(server: str, config: ConfigOpt, as_json: JsonOpt = False) -> None:
    """Every status change of SERVER, oldest first."""
    from services.gateway import status

    cfg = _load(config)
    rows = [status.public(c) for c in _run(cfg, lambda store, _: store.status_history(server))]
    if as_json:
        typer.echo(json.dumps({"history": rows}))
        return
    for r in rows:
        typer.echo(f"{_when(r['at'])}  {r['state']:8} by {r['by']}: {r['reason']}")


def _when(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
