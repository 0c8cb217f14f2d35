"""``sealtrail gateway tools``: the upstream tools the gateway has pinned.

  sealtrail gateway tools pending --config FILE              new tools no agent may call yet, changed definitions
  sealtrail gateway tools list --config FILE                 every pinned tool, removed ones included
  sealtrail gateway tools approve SERVER/TOOL --by NAME ...  approve a changed definition (recorded)
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from services.gateway.config import GatewayConfig

tools_app = typer.Typer(help="Pinned upstream tools: pending decisions, changed definitions, approvals.",
                        no_args_is_help=True)
ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="the gateway's TOML configuration")]
JsonOpt = Annotated[bool, typer.Option("--json")]


def _load(path: Path) -> GatewayConfig:
    from services.gateway import config

    try:
        return config.load(path)
    except config.GatewayConfigError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None


async def _pins(cfg: GatewayConfig, server: str | None) -> Any:
    from services.gateway.app import open_store

    store = await open_store(cfg.state_database)
    try:
        return await store.list_pins(server)
    finally:
        await store.close()


def _show(config: Path, server: str | None, as_json: bool, *, everything: bool) -> None:
    from services.gateway.toolreview import review

    cfg = _load(config)
    shown = review(cfg, asyncio.run(_pins(cfg, server)), everything=everything)
    if as_json:
        typer.echo(json.dumps({"tools": shown}))
        return
    for t in shown:
        typer.echo(f"{t['server']}/{t['tool']}  {t['state']:8}  {_detail(t)}")


def _detail(t: dict[str, Any]) -> str:
    hint = f"suggested tier {t['suggested_tier']}" if t["suggested_tier"] else "no tier hint"
    if t["state"] == "new":
        return f"missing {' and '.join(t['missing'])}; {hint} (from the server's annotations: {t['hints'] or '-'})"
    if t["state"] == "changed":
        verdict = "blocked until approved" if t["blocked"] else "allowed and flagged"
        return f"{verdict}: approved {t['approved_hash'][:19]}, now {t['def_hash'][:19]}"
    return f"{t['def_hash'][:19]}; tier {t['tier'] or '-'}"


@tools_app.command("pending")
def pending(config: ConfigOpt, server: Annotated[str | None, typer.Option()] = None, as_json: JsonOpt = False) -> None:
    """Tools that wait for a decision: new ones (no tier or no allow-list entry) and changed definitions."""
    _show(config, server, as_json, everything=False)


@tools_app.command("list")
def listing(config: ConfigOpt, server: Annotated[str | None, typer.Option()] = None, as_json: JsonOpt = False) -> None:
    """Every pinned tool with its state (pinned, new, changed, removed)."""
    _show(config, server, as_json, everything=True)


@tools_app.command("approve")
def approve(tool: Annotated[str, typer.Argument(help="SERVER/TOOL")], config: ConfigOpt,
            by: Annotated[str, typer.Option(help="who approves")]) -> None:
    """Approve the current definition of a changed tool; every gateway of the state database follows."""
    from sealtrail.errors import SealtrailError
    from sealtrail.sdk.client import SealtrailClient
    from services.gateway.app import open_store, read_token, spool_dir
    from services.gateway.policy import policy_version
    from services.gateway.toolreview import approve as approve_pin

    cfg = _load(config)

    async def job() -> Any:
        store = await open_store(cfg.state_database)
        try:
            async with SealtrailClient(cfg.ledger.url, read_token(cfg), spool_dir=spool_dir(cfg, "cli"),
                                       attempts=2) as client:
                return await approve_pin(store, client.send, cfg, ref=tool, by=by, policy_version=policy_version(cfg))
        finally:
            await store.close()

    try:
        done = asyncio.run(job())
    except SealtrailError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{done.server}/{done.tool} approved at {done.def_hash} by {by}")
