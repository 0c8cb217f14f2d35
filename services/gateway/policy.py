"""The policy gate as pure code: who may call what, in which mode, under which limits.

Order for one ``tools/call``: the agent is configured → the server is configured → the tool is
decided (it has a tier) → the tool is on the agent's allow-list → mode → rate limits (applied by the
caller with :func:`take`, since buckets live in the shared state store). Deny by default at every
step. ``SERVER/*`` covers only the tools declared under ``[servers.SERVER.tools]``: a tool an
upstream adds later is undecided and denied until the configuration gives it a tier.
"""

from __future__ import annotations

import fnmatch
import hashlib
from dataclasses import asdict, dataclass
from typing import Any, Literal

import rfc8785

from services.gateway.config import SEPARATOR, AgentConfig, GatewayConfig, Mode, RateLimit, Tier

Decision = Literal["allow", "deny", "step_up", "observe"]
_DEFAULT_MODE: dict[Tier, Mode] = {"read": "allow", "write": "allow", "destructive": "step_up"}


@dataclass(frozen=True, slots=True)
class Limit:
    """One bucket a call draws from: ``scope`` (server, tool, agent) and the bucket's key."""

    scope: Literal["server", "tool", "agent"]
    bucket: str
    rate: RateLimit


@dataclass(frozen=True, slots=True)
class Verdict:
    decision: Decision
    tier: Tier | Literal["unknown"]
    reason: str
    """Why: ``allowed``, ``unknown_agent``, ``unknown_server``, ``undecided_tool``, ``not_allowed``,
    ``insufficient_scope``, ``mode_deny``."""
    limits: tuple[Limit, ...] = ()
    cost_micros: int | None = None
    timeout_s: float = 30.0


def decide(cfg: GatewayConfig, agent: str, server: str, tool: str, grant: frozenset[str] | None = None) -> Verdict:
    """The gate's verdict for ``agent`` calling ``server``'s ``tool`` (before rate limits).

    ``grant`` is what an OAuth access token's scopes allow (``SERVER/TOOL``, ``SERVER/*``): the tool
    must be in it as well as on the agent's allow-list; an agent the configuration does not name
    gets the grant alone (default modes, no agent rate limit)."""
    a, s = cfg.agents.get(agent), cfg.servers.get(server)
    if a is None and grant is not None:
        a = AgentConfig(name=agent, allow=(f"{server}/{tool}",))
    if a is None:
        return Verdict("deny", "unknown", "unknown_agent")
    if s is None:
        return Verdict("deny", "unknown", "unknown_server")
    declared = s.tools.get(tool)
    tier = None if declared is None else (declared.tier or s.tier_default)
    if declared is None or tier is None:
        return Verdict("deny", "unknown", "undecided_tool")
    ref = f"{server}/{tool}"
    if ref not in a.allow and f"{server}/*" not in a.allow:
        return Verdict("deny", tier, "not_allowed")
    if grant is not None and ref not in grant and f"{server}/*" not in grant:
        return Verdict("deny", tier, "insufficient_scope")
    mode = a.modes.get(ref) or a.modes.get(f"{server}/*") or declared.mode or _DEFAULT_MODE[tier]
    timeout = declared.timeout_s or s.timeout_s
    if mode == "deny":
        return Verdict("deny", tier, "mode_deny", timeout_s=timeout)
    limits = []
    if s.rate_limit is not None:
        limits.append(Limit("server", f"server:{server}", s.rate_limit))
    if declared.rate_limit is not None:
        limits.append(Limit("tool", f"tool:{ref}", declared.rate_limit))
    if a.rate_limit is not None:
        limits.append(Limit("agent", f"agent:{agent}", a.rate_limit))
    return Verdict(mode, tier, "allowed", tuple(limits), declared.cost_micros, timeout)


def visible(cfg: GatewayConfig, agent: str, server: str, tool: str, grant: frozenset[str] | None = None) -> bool:
    """Whether ``tools/list`` shows the tool to the agent: only what it may call (held calls included)."""
    return decide(cfg, agent, server, tool, grant).decision != "deny"


def exposed_name(server: str, tool: str) -> str:
    return f"{server}{SEPARATOR}{tool}"


def split_name(name: str) -> tuple[str, str] | None:
    """``SERVER__TOOL`` → (server, tool); None when the name has no separator."""
    server, sep, tool = name.partition(SEPARATOR)
    return (server, tool) if sep and server and tool else None


def policy_version(cfg: GatewayConfig) -> str:
    """A hash of the effective policy (servers' tools, tiers, modes, limits; agents; subject rules),
    so every recorded decision names the exact policy it was taken under."""
    doc: dict[str, Any] = {
        "policy_id": cfg.policy_id,
        "servers": {n: {"tier_default": s.tier_default, "rate_limit": _rate(s.rate_limit), "timeout_s": s.timeout_s,
                        "tools": {t: {**asdict(p), "rate_limit": _rate(p.rate_limit)} for t, p in s.tools.items()},
                        **({"on_change": s.on_change} if s.on_change else {})}
                    for n, s in cfg.servers.items()},
        "agents": {n: {"allow": sorted(a.allow), "modes": a.modes, "rate_limit": _rate(a.rate_limit)}
                   for n, a in cfg.agents.items()},
        "subjects": [asdict(r) for r in cfg.subjects],
        "fail_closed": sorted(cfg.ledger.fail_closed),
    }
    return "sha256:" + hashlib.sha256(rfc8785.dumps(_plain(doc))).hexdigest()


def subjects_of(cfg: GatewayConfig, server: str, tool: str, arguments: Any) -> list[str]:
    """The data subjects the ``[subjects]`` rules name from a call's arguments (``kind:value``)."""
    found: list[str] = []
    for rule in cfg.subjects:
        if not any(fnmatch.fnmatchcase(f"{server}/{tool}", pattern) for pattern in rule.tools):
            continue
        value: Any = arguments
        for part in rule.argument.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
            subject = f"{rule.kind}:{value}"
            if subject not in found and len(subject) <= 256:
                found.append(subject)
    return found


def take(tokens: float, updated: float, now: float, rate: RateLimit) -> tuple[bool, float, float]:
    """One token-bucket draw: ``(allowed, tokens_left, retry_after_s)``. A bucket starts full and
    refills ``capacity`` tokens evenly over ``period_s``."""
    per_s = rate.capacity / rate.period_s
    level = min(float(rate.capacity), tokens + max(0.0, now - updated) * per_s)
    if level >= 1.0:
        return True, level - 1.0, 0.0
    return False, level, (1.0 - level) / per_s


def _rate(rate: RateLimit | None) -> str | None:
    return None if rate is None else rate.text


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value
