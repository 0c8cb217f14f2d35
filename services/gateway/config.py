"""The gateway's TOML configuration, read into frozen dataclasses.

Every refusal is a :class:`GatewayConfigError` naming the key (``servers.fs.tools.write_file.tier``)
and what is wrong with it; unknown keys are refused too, so a typo never silently weakens a policy.
The shape is documented in ``docs/gateway.md``.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from sealtrail.errors import SealtrailError

if TYPE_CHECKING:
    from services.gateway.oauth import OAuthConfig

Tier = Literal["read", "write", "destructive"]
Mode = Literal["allow", "deny", "step_up", "observe"]
OnChange = Literal["block", "flag"]
TIERS: tuple[Tier, ...] = ("read", "write", "destructive")
MODES: tuple[Mode, ...] = ("allow", "deny", "step_up", "observe")
ON_CHANGE: tuple[OnChange, ...] = ("block", "flag")
SEPARATOR = "__"
"""Agents see upstream tool ``TOOL`` of server ``SERVER`` as ``SERVER__TOOL``."""
DEFAULT_LISTEN = "127.0.0.1:8790"
DEFAULT_MAX_ARGUMENT_BYTES = 1024 * 1024
DEFAULT_CALL_TIMEOUT_S = 30.0
DEFAULT_HOLD_S = 10.0
DEFAULT_APPROVAL_TTL_S = 3600.0
DEFAULT_KEY_CACHE_S = 2.0
DEFAULT_HEALTH_INTERVAL_S = 60.0
DEFAULT_UNHEALTHY_AFTER = 3
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_RATE = re.compile(r"^\s*([1-9][0-9]{0,8})\s*/\s*(s|sec|second|min|minute|h|hour)\s*$")
_PERIODS = {"s": 1.0, "sec": 1.0, "second": 1.0, "min": 60.0, "minute": 60.0, "h": 3600.0, "hour": 3600.0}


class GatewayConfigError(SealtrailError):
    """The configuration file is unreadable or a key in it is invalid; the message names the key."""


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A token bucket: ``capacity`` calls, refilled evenly over ``period_s`` seconds."""

    capacity: int
    period_s: float
    text: str

    @property
    def window_s(self) -> int:
        return max(1, int(self.period_s))


@dataclass(frozen=True, slots=True)
class ToolPolicy:
    tier: Tier | None = None
    mode: Mode | None = None
    rate_limit: RateLimit | None = None
    cost_micros: int | None = None
    timeout_s: float | None = None
    on_change: OnChange | None = None
    """A changed definition is blocked until approved, or allowed and flagged (default by tier)."""


@dataclass(frozen=True, slots=True)
class ServerConfig:
    name: str
    command: tuple[str, ...] | None = None
    url: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    rate_limit: RateLimit | None = None
    tier_default: Tier | None = None
    timeout_s: float = DEFAULT_CALL_TIMEOUT_S
    tools: dict[str, ToolPolicy] = field(default_factory=dict)
    health_interval_s: float = DEFAULT_HEALTH_INTERVAL_S
    """Seconds between scheduled health checks (0: none)."""
    unhealthy_after: int = DEFAULT_UNHEALTHY_AFTER
    """Failed checks in a row after which calls to the server are refused until a check passes."""
    on_change: OnChange | None = None


@dataclass(frozen=True, slots=True)
class AgentConfig:
    name: str
    allow: tuple[str, ...] = ()
    modes: dict[str, Mode] = field(default_factory=dict)
    rate_limit: RateLimit | None = None


@dataclass(frozen=True, slots=True)
class SubjectRule:
    """The value at ``argument`` (a dotted path into the arguments) names subject ``KIND:value``."""

    argument: str
    kind: str
    tools: tuple[str, ...] = ("*",)


@dataclass(frozen=True, slots=True)
class LedgerConfig:
    url: str
    token_file: Path
    spool_dir: Path | None = None
    fail_closed: tuple[Tier, ...] = ("destructive",)


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    path: Path
    policy_id: str
    ledger: LedgerConfig
    state_database: str
    listen: str = DEFAULT_LISTEN
    gateway_id: str = "gateway"
    max_argument_bytes: int = DEFAULT_MAX_ARGUMENT_BYTES
    hold_s: float = DEFAULT_HOLD_S
    approval_ttl_s: float = DEFAULT_APPROVAL_TTL_S
    key_cache_s: float = DEFAULT_KEY_CACHE_S
    json_response: bool = True
    currency: str = "USD"
    servers: dict[str, ServerConfig] = field(default_factory=dict)
    agents: dict[str, AgentConfig] = field(default_factory=dict)
    subjects: tuple[SubjectRule, ...] = ()
    kek_file: Path | None = None
    """``[state] kek_file``: the KEK that seals upstream credentials in the state database."""
    oauth: OAuthConfig | None = None
    """``[oauth]``: OAuth 2.1 access tokens accepted beside gateway keys (see ``oauth_config.py``)."""

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0] or "127.0.0.1"

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])


def load(path: Path | str) -> GatewayConfig:
    """Read and validate ``path``; :class:`GatewayConfigError` names the first bad key."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except OSError as e:
        raise GatewayConfigError(f"cannot read the gateway configuration {path}: {e.strerror}") from e
    except tomllib.TOMLDecodeError as e:
        raise GatewayConfigError(f"{path} is not valid TOML: {e}") from e
    return parse(raw, path=path)


def parse(raw: dict[str, Any], *, path: Path) -> GatewayConfig:
    _keys(raw, "", {"policy_id", "gateway", "ledger", "state", "servers", "agents", "subjects", "oauth"})
    base = path.parent
    gw = _table(raw, "gateway", optional=True)
    _keys(gw, "gateway", {"listen", "id", "max_argument_bytes", "hold_seconds", "approval_ttl_seconds",
                          "key_cache_seconds", "json_response", "currency"})
    servers = {name: _server(name, _table(_table(raw, "servers"), name, where="servers"))
               for name in _table(raw, "servers")}
    agents = {name: _agent(name, _table(_table(raw, "agents", optional=True), name, where="agents"), servers)
              for name in _table(raw, "agents", optional=True)}
    return GatewayConfig(
        path=path, policy_id=_name(raw.get("policy_id"), "policy_id"), ledger=_ledger(raw, base),
        state_database=_state(raw, base), listen=_listen(gw.get("listen", DEFAULT_LISTEN)),
        gateway_id=_name(gw.get("id", "gateway"), "gateway.id"),
        max_argument_bytes=_int(gw.get("max_argument_bytes", DEFAULT_MAX_ARGUMENT_BYTES),
                                "gateway.max_argument_bytes"),
        hold_s=_seconds(gw.get("hold_seconds", DEFAULT_HOLD_S), "gateway.hold_seconds", zero=True),
        approval_ttl_s=_seconds(gw.get("approval_ttl_seconds", DEFAULT_APPROVAL_TTL_S), "gateway.approval_ttl_seconds"),
        key_cache_s=_seconds(gw.get("key_cache_seconds", DEFAULT_KEY_CACHE_S), "gateway.key_cache_seconds", zero=True),
        json_response=_bool(gw.get("json_response", True), "gateway.json_response"),
        currency=_currency(gw.get("currency", "USD")), servers=servers, agents=agents, subjects=_subjects(raw),
        oauth=_oauth(raw, base, servers), kek_file=_kek_file(raw, base),
    )


def _oauth(raw: dict[str, Any], base: Path, servers: dict[str, ServerConfig]) -> OAuthConfig | None:
    if "oauth" not in raw:
        return None
    from services.gateway.oauth_config import parse_oauth  # it builds on this module's errors and types

    return parse_oauth(raw["oauth"], base=base, servers=servers)


def parse_rate(value: object, key: str) -> RateLimit:
    """``"N/s"``, ``"N/min"`` or ``"N/h"``."""
    m = _RATE.match(value) if isinstance(value, str) else None
    if m is None:
        raise GatewayConfigError(f"{key}: expected a rate such as \"10/s\", \"100/min\" or \"1000/h\", got {value!r}")
    return RateLimit(int(m.group(1)), _PERIODS[m.group(2)], f"{m.group(1)}/{m.group(2)}")


def _ledger(raw: dict[str, Any], base: Path) -> LedgerConfig:
    t = _table(raw, "ledger")
    _keys(t, "ledger", {"url", "token_file", "spool_dir", "fail_closed"})
    url = t.get("url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise GatewayConfigError(f"ledger.url: expected an http(s) URL of ingest or `sealtrail serve`, got {url!r}")
    closed = t.get("fail_closed", ["destructive"])
    if not isinstance(closed, list) or any(c not in TIERS for c in closed):
        raise GatewayConfigError(f"ledger.fail_closed: expected a list of tiers from {list(TIERS)}, got {closed!r}")
    spool = t.get("spool_dir")
    return LedgerConfig(url=url.rstrip("/"), token_file=_path(t.get("token_file"), "ledger.token_file", base),
                        spool_dir=None if spool is None else _path(spool, "ledger.spool_dir", base),
                        fail_closed=tuple(cast(list[Tier], closed)))


def _state(raw: dict[str, Any], base: Path) -> str:
    t = _table(raw, "state")
    _keys(t, "state", {"database", "kek_file"})
    db = t.get("database")
    if not isinstance(db, str) or not db:
        raise GatewayConfigError("state.database: expected a PostgreSQL URL or a SQLite file path")
    if db.startswith(("postgres://", "postgresql://")):
        return db
    return str(_path(db, "state.database", base))


def _kek_file(raw: dict[str, Any], base: Path) -> Path | None:
    value = _table(raw, "state").get("kek_file")
    return None if value is None else _path(value, "state.kek_file", base)


def _server(name: str, t: dict[str, Any]) -> ServerConfig:
    where = f"servers.{_name(name, 'servers.' + name)}"
    if SEPARATOR in name:
        raise GatewayConfigError(f"{where}: a server name may not contain {SEPARATOR!r}")
    _keys(t, where, {"command", "url", "env", "rate_limit", "tier_default", "timeout_seconds", "tools", "on_change",
                     "health_interval_seconds", "unhealthy_after"})
    command, url = t.get("command"), t.get("url")
    if (command is None) == (url is None):
        raise GatewayConfigError(f"{where}: give exactly one of command = [...] (stdio) or url = \"...\"")
    if command is not None and (not isinstance(command, list) or not command
                                or not all(isinstance(c, str) and c for c in command)):
        raise GatewayConfigError(f"{where}.command: expected a non-empty list of strings")
    if url is not None and (not isinstance(url, str) or not url.startswith(("http://", "https://"))):
        raise GatewayConfigError(f"{where}.url: expected an http(s) URL of a Streamable HTTP MCP endpoint")
    env = t.get("env", {})
    if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
        raise GatewayConfigError(f"{where}.env: expected a table of strings")
    tools = _table(t, "tools", optional=True, where=where)
    return ServerConfig(
        name=name, command=tuple(command) if command else None, url=url, env=dict(env),
        rate_limit=None if "rate_limit" not in t else parse_rate(t["rate_limit"], f"{where}.rate_limit"),
        tier_default=_tier(t.get("tier_default"), f"{where}.tier_default"),
        timeout_s=_seconds(t.get("timeout_seconds", DEFAULT_CALL_TIMEOUT_S), f"{where}.timeout_seconds"),
        tools={tool: _tool(_table(tools, tool, where=f"{where}.tools"), f"{where}.tools.{tool}") for tool in tools},
        on_change=_on_change(t.get("on_change"), f"{where}.on_change"),
        health_interval_s=_seconds(t.get("health_interval_seconds", DEFAULT_HEALTH_INTERVAL_S),
                                   f"{where}.health_interval_seconds", zero=True),
        unhealthy_after=_int(t.get("unhealthy_after", DEFAULT_UNHEALTHY_AFTER), f"{where}.unhealthy_after"),
    )


def _tool(t: dict[str, Any], where: str) -> ToolPolicy:
    _keys(t, where, {"tier", "mode", "rate_limit", "cost_micros", "timeout_seconds", "on_change"})
    mode = t.get("mode")
    if mode is not None and mode not in MODES:
        raise GatewayConfigError(f"{where}.mode: expected one of {list(MODES)}, got {mode!r}")
    return ToolPolicy(
        tier=_tier(t.get("tier"), f"{where}.tier"), mode=cast(Mode | None, mode),
        rate_limit=None if "rate_limit" not in t else parse_rate(t["rate_limit"], f"{where}.rate_limit"),
        cost_micros=None if "cost_micros" not in t else _int(t["cost_micros"], f"{where}.cost_micros", zero=True),
        timeout_s=None if "timeout_seconds" not in t else _seconds(t["timeout_seconds"], f"{where}.timeout_seconds"),
        on_change=_on_change(t.get("on_change"), f"{where}.on_change"),
    )


def _agent(name: str, t: dict[str, Any], servers: dict[str, ServerConfig]) -> AgentConfig:
    where = f"agents.{_name(name, 'agents.' + name)}"
    _keys(t, where, {"allow", "modes", "rate_limit"})
    allow = t.get("allow", [])
    if not isinstance(allow, list) or not all(isinstance(a, str) for a in allow):
        raise GatewayConfigError(f"{where}.allow: expected a list of \"SERVER/TOOL\" or \"SERVER/*\" strings")
    for i, entry in enumerate(allow):
        _tool_ref(entry, f"{where}.allow[{i}]", servers)
    modes = t.get("modes", {})
    if not isinstance(modes, dict):
        raise GatewayConfigError(f"{where}.modes: expected a table of \"SERVER/TOOL\" = mode")
    for ref, mode in modes.items():
        _tool_ref(ref, f"{where}.modes.\"{ref}\"", servers)
        if mode not in MODES:
            raise GatewayConfigError(f"{where}.modes.\"{ref}\": expected one of {list(MODES)}, got {mode!r}")
    return AgentConfig(name=name, allow=tuple(allow), modes=dict(modes),
                       rate_limit=None if "rate_limit" not in t else parse_rate(t["rate_limit"], f"{where}.rate_limit"))


def _tool_ref(ref: str, where: str, servers: dict[str, ServerConfig]) -> None:
    server, sep, tool = ref.partition("/")
    if not sep or not tool:
        raise GatewayConfigError(f"{where}: expected \"SERVER/TOOL\" or \"SERVER/*\", got {ref!r}")
    if server not in servers:
        raise GatewayConfigError(f"{where}: no server {server!r} is configured (servers: {sorted(servers)})")


def _subjects(raw: dict[str, Any]) -> tuple[SubjectRule, ...]:
    t = _table(raw, "subjects", optional=True)
    _keys(t, "subjects", {"rules"})
    rules = t.get("rules", [])
    if not isinstance(rules, list):
        raise GatewayConfigError("subjects.rules: expected an array of tables ([[subjects.rules]])")
    out = []
    for i, rule in enumerate(rules):
        where = f"subjects.rules[{i}]"
        if not isinstance(rule, dict):
            raise GatewayConfigError(f"{where}: expected a table with argument and kind")
        _keys(rule, where, {"argument", "kind", "tools"})
        arg, kind, tools = rule.get("argument"), rule.get("kind", "user"), rule.get("tools", ["*"])
        if not isinstance(arg, str) or not arg:
            raise GatewayConfigError(f"{where}.argument: expected a dotted path such as \"email\" or \"customer.id\"")
        if not isinstance(kind, str) or not re.fullmatch(r"[a-z][a-z0-9_-]{0,31}", kind):
            raise GatewayConfigError(f"{where}.kind: expected a lowercase word such as \"user\", got {kind!r}")
        if not isinstance(tools, list) or not all(isinstance(x, str) for x in tools):
            raise GatewayConfigError(f"{where}.tools: expected a list of \"SERVER/TOOL\" or \"SERVER/*\"")
        out.append(SubjectRule(arg, kind, tuple(tools)))
    return tuple(out)


def _keys(t: dict[str, Any], where: str, allowed: set[str]) -> None:
    for key in t:
        if key not in allowed:
            name = f"{where}.{key}" if where else key
            raise GatewayConfigError(f"{name}: unknown key (expected one of {sorted(allowed)})")


def _table(t: dict[str, Any], key: str, *, optional: bool = False, where: str = "") -> dict[str, Any]:
    name = f"{where}.{key}" if where else key
    if key not in t:
        if optional:
            return {}
        raise GatewayConfigError(f"{name}: missing (a [{name}] table is required)")
    value = t[key]
    if not isinstance(value, dict):
        raise GatewayConfigError(f"{name}: expected a table")
    return value


def _name(value: object, key: str) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise GatewayConfigError(f"{key}: expected a name of letters, digits, '_', '.', '-' (1 to 64), got {value!r}")
    return value


def _tier(value: object, key: str) -> Tier | None:
    if value is not None and value not in TIERS:
        raise GatewayConfigError(f"{key}: expected one of {list(TIERS)}, got {value!r}")
    return value


def _on_change(value: object, key: str) -> OnChange | None:
    if value is not None and value not in ON_CHANGE:
        raise GatewayConfigError(f"{key}: expected one of {list(ON_CHANGE)}, got {value!r}")
    return value


def _int(value: object, key: str, *, zero: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < (0 if zero else 1):
        raise GatewayConfigError(f"{key}: expected an integer {'>= 0' if zero else '>= 1'}, got {value!r}")
    return value


def _bool(value: object, key: str) -> bool:
    if not isinstance(value, bool):
        raise GatewayConfigError(f"{key}: expected true or false, got {value!r}")
    return value


def _seconds(value: object, key: str, *, zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0 or (value == 0 and not zero):
        raise GatewayConfigError(f"{key}: expected a number of seconds {'>= 0' if zero else '> 0'}, got {value!r}")
    return float(value)


def _path(value: object, key: str, base: Path) -> Path:
    if not isinstance(value, str) or not value:
        raise GatewayConfigError(f"{key}: expected a file path")
    p = Path(value).expanduser()
    return p if p.is_absolute() else base / p


def _listen(value: object) -> str:
    ok = isinstance(value, str) and re.fullmatch(r"[^\s:]*:[0-9]{1,5}", value) is not None
    if not ok or int(str(value).rpartition(":")[2]) > 65535:
        raise GatewayConfigError(f"gateway.listen: expected HOST:PORT such as \"127.0.0.1:8790\", got {value!r}")
    return str(value)


def _currency(value: object) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Z]{3}", value):
        raise GatewayConfigError(f"gateway.currency: expected an ISO 4217 code such as \"USD\", got {value!r}")
    return value
