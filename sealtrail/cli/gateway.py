"""``sealtrail gateway``: the MCP gateway, its agent keys and its step-up approvals.

  sealtrail gateway --config FILE                      serve agents over Streamable HTTP (/mcp)
  sealtrail gateway stdio --config FILE --agent NAME   serve one agent over stdio (desktop clients)
  sealtrail gateway key create|revoke|rotate ...       agent and approver keys (shown once, stored hashed)
  sealtrail gateway approvals list|approve|reject ...  held step-up calls
  sealtrail gateway reload --config FILE               re-read the configuration (same as SIGHUP)
  sealtrail gateway tools pending|list|approve ...     pinned upstream tools (gateway_tools.py)
  sealtrail gateway credential|health|server ...       upstream credentials, health, status (gateway_ops.py)
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from sealtrail.cli import gateway_ops
from sealtrail.cli.gateway_tools import tools_app

if TYPE_CHECKING:
    from services.gateway.config import GatewayConfig

gateway_app = typer.Typer(help="The MCP gateway: policy, step-up approvals, rate limits, recording.",
                          invoke_without_command=True, no_args_is_help=False)
key_app = typer.Typer(help="Agent and approver keys.", no_args_is_help=True)
approvals_app = typer.Typer(help="Calls held for an approver.", no_args_is_help=True)
gateway_app.add_typer(key_app, name="key")
gateway_app.add_typer(approvals_app, name="approvals")
gateway_app.add_typer(tools_app, name="tools")
gateway_ops.register(gateway_app)
ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="the gateway's TOML configuration")]


def register(app: typer.Typer) -> None:
    app.add_typer(gateway_app, name="gateway")


def _load(path: Path) -> GatewayConfig:
    from services.gateway import config

    try:
        return config.load(path)
    except config.GatewayConfigError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None


def _logging() -> None:
    from sealtrail.infra.logs import configure_logging

    configure_logging(os.environ.get("SEALTRAIL_LOG_LEVEL", "INFO"), stream=sys.stderr)
    for chatty in ("httpx", "mcp"):  # one line per ledger post or MCP session is noise, not news
        logging.getLogger(chatty).setLevel(logging.WARNING)


@gateway_app.callback()
def run(ctx: typer.Context, config: Annotated[Path | None, typer.Option(
        "--config", "-c", help="the gateway's TOML configuration")] = None) -> None:
    """Serve agents over Streamable HTTP at http://LISTEN/mcp (see docs/gateway.md)."""
    if ctx.invoked_subcommand is not None:
        return
    if config is None:
        typer.echo(ctx.get_help())
        raise typer.Exit(2)
    from services.gateway.service import run_http

    cfg = _load(config)
    _logging()
    run_http(cfg)


@gateway_app.command("stdio")
def stdio(config: ConfigOpt, agent: Annotated[str, typer.Option(help="the agent this client acts as")]) -> None:
    """Serve one agent over stdin/stdout (for desktop MCP clients that start a command)."""
    from services.gateway.service import serve_stdio

    cfg = _load(config)
    _logging()
    asyncio.run(serve_stdio(cfg, agent))


@gateway_app.command("reload")
def reload(config: ConfigOpt) -> None:
    """Make every running gateway of this configuration re-read it (SIGHUP); sessions stay open."""
    from services.gateway.service import running_pids

    cfg = _load(config)  # a bad file is refused here before any gateway is signalled
    pids = running_pids(cfg.path)
    if not pids:
        typer.echo(f"error: no running gateway of {cfg.path} was found", err=True)
        raise typer.Exit(1)
    for pid in pids:
        os.kill(pid, signal.SIGHUP)
    typer.echo(f"reload sent to {len(pids)} gateway process(es)")


async def _with_store(cfg: GatewayConfig, job: Any) -> Any:
    from services.gateway.app import open_store

    store = await open_store(cfg.state_database)
    try:
        return await job(store)
    finally:
        await store.close()


@key_app.command("create")
def key_create(config: ConfigOpt,
               agent: Annotated[str | None, typer.Option(help="the agent the key is bound to")] = None,
               approver: Annotated[str | None, typer.Option(help="make an approver key instead")] = None,
               operator: Annotated[str | None, typer.Option(help="make an operator key (admin API)")] = None,
               as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Create a key; its token is printed once and only its hash is stored."""
    from services.gateway import keys

    cfg = _load(config)
    if [agent, approver, operator].count(None) != 2:
        typer.echo("error: give exactly one of --agent NAME, --approver NAME or --operator NAME", err=True)
        raise typer.Exit(2)
    if agent is not None and agent not in cfg.agents:
        typer.echo(f"error: --agent {agent!r}: no [agents.{agent}] in {cfg.path}", err=True)
        raise typer.Exit(2)
    bound = agent if agent is not None else f"@{approver}" if approver is not None else f"#{operator}"
    new, record = keys.mint(bound, time.time())
    asyncio.run(_with_store(cfg, lambda s: s.create_key(record)))
    _print_key(new.key_id, new.token, bound, as_json)


def _print_key(key_id: str, token: str, bound: str, as_json: bool, **extra: Any) -> None:
    if as_json:
        typer.echo(json.dumps({"key_id": key_id, "token": token, "agent": bound, **extra}))
    else:
        typer.echo(f"key {key_id} for {bound} (shown only now): {token}")


@key_app.command("revoke")
def key_revoke(key_id: str, config: ConfigOpt) -> None:
    """Revoke a key at once (running gateways stop accepting it within gateway.key_cache_seconds)."""
    cfg = _load(config)
    if not asyncio.run(_with_store(cfg, lambda s: s.revoke_key(key_id, time.time()))):
        typer.echo(f"error: no live key {key_id}", err=True)
        raise typer.Exit(1)
    typer.echo(f"key {key_id} revoked")


@key_app.command("rotate")
def key_rotate(key_id: str, config: ConfigOpt,
               overlap: Annotated[float, typer.Option(help="seconds the old key keeps working")] = 3600.0,
               as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Create a new key for the same agent; the old one expires after --overlap seconds."""
    from services.gateway import keys

    cfg = _load(config)

    async def job(store: Any) -> tuple[keys.NewKey, float] | None:
        old = await store.get_key(key_id)
        now = time.time()
        if old is None or not old.usable(now):
            return None
        new, record = keys.mint(old.agent, now)
        await store.create_key(record)
        await store.expire_key(key_id, now + overlap)
        return new, now + overlap

    done = asyncio.run(_with_store(cfg, job))
    if done is None:
        typer.echo(f"error: no live key {key_id}", err=True)
        raise typer.Exit(1)
    new, until = done
    _print_key(new.key_id, new.token, new.agent, as_json, replaces=key_id,
               old_expires_at=datetime.fromtimestamp(until, UTC).isoformat())


@approvals_app.command("list")
def approvals_list(config: ConfigOpt, status: Annotated[str | None, typer.Option()] = None,
                   as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Approvals (default: all), oldest first."""
    from services.gateway.approvals import STATUSES, public

    cfg = _load(config)
    if status is not None and status not in STATUSES:
        typer.echo(f"error: --status must be one of {list(STATUSES)}", err=True)
        raise typer.Exit(2)
    found = [public(a) for a in asyncio.run(_with_store(cfg, lambda s: s.list_approvals(status)))]
    if as_json:
        typer.echo(json.dumps({"approvals": found}))
        return
    for a in found:
        asked = datetime.fromtimestamp(a["created_at"], UTC).strftime("%Y-%m-%d %H:%M:%S")
        typer.echo(f"{a['approval_id']}  {a['status']:8}  {a['agent']} -> {a['server']}/{a['tool']}  asked {asked}Z")


@approvals_app.command("approve")
def approvals_approve(approval_id: str, config: ConfigOpt, by: Annotated[str, typer.Option()]) -> None:
    """Grant a held call; its next retry is forwarded."""
    _decide(config, approval_id, granted=True, by=by, reason=None)


@approvals_app.command("reject")
def approvals_reject(approval_id: str, config: ConfigOpt, by: Annotated[str, typer.Option()],
                     reason: Annotated[str, typer.Option()] = "") -> None:
    """Refuse a held call."""
    _decide(config, approval_id, granted=False, by=by, reason=reason or None)


def _decide(config: Path, approval_id: str, *, granted: bool, by: str, reason: str | None) -> None:
    from sealtrail.errors import SealtrailError
    from sealtrail.sdk.client import SealtrailClient
    from services.gateway.app import read_token, spool_dir
    from services.gateway.approvals import decide
    from services.gateway.policy import policy_version

    cfg = _load(config)

    async def job(store: Any) -> Any:
        async with SealtrailClient(cfg.ledger.url, read_token(cfg), spool_dir=spool_dir(cfg, "cli"),
                                   attempts=2) as client:
            return await decide(store, client.send, approval_id=approval_id, granted=granted, by=by, reason=reason,
                                policy_id=cfg.policy_id, policy_version=policy_version(cfg))

    try:
        done = asyncio.run(_with_store(cfg, job))
    except SealtrailError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"approval {done.approval_id} {done.status} by {by}")
