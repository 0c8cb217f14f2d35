"""The ``[oauth]`` table of the gateway configuration (documented in ``docs/gateway.md``).

Every refusal is a :class:`~services.gateway.config.GatewayConfigError` naming the key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from services.gateway.config import GatewayConfigError, ServerConfig
from services.gateway.oauth import Issuer, OAuthConfig

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_TOP = {"resource", "authorization_servers", "agent_claim", "leeway_seconds", "jwks_cache_seconds",
        "jwks_refetch_seconds", "issuers", "scopes"}
_ISSUER = {"issuer", "jwks_url", "jwks_file", "audience", "agent_claim"}


def parse_oauth(t: Any, *, base: Path, servers: dict[str, ServerConfig]) -> OAuthConfig:
    if not isinstance(t, dict):
        raise GatewayConfigError("oauth: expected a table")
    _known(t, "oauth", _TOP)
    resource = _url(t.get("resource"), "oauth.resource")
    parts = urlsplit(resource)
    if parts.query or parts.fragment:
        raise GatewayConfigError("oauth.resource: the resource URI may have no query or fragment (RFC 8707)")
    claim = _word(t.get("agent_claim", "sub"), "oauth.agent_claim")
    issuers_raw = t.get("issuers")
    if not isinstance(issuers_raw, list) or not issuers_raw:
        raise GatewayConfigError("oauth.issuers: expected at least one [[oauth.issuers]] table")
    issuers: dict[str, Issuer] = {}
    for i, raw in enumerate(issuers_raw):
        issuer = _issuer(raw, f"oauth.issuers[{i}]", base=base, resource=resource, claim=claim)
        if issuer.issuer in issuers:
            raise GatewayConfigError(f"oauth.issuers[{i}].issuer: {issuer.issuer} is configured twice")
        issuers[issuer.issuer] = issuer
    servers_raw = t.get("authorization_servers", list(issuers))
    if not isinstance(servers_raw, list) or not servers_raw:
        raise GatewayConfigError("oauth.authorization_servers: expected a non-empty list of issuer URLs")
    auth_servers = tuple(_url(s, f"oauth.authorization_servers[{i}]") for i, s in enumerate(servers_raw))
    return OAuthConfig(
        resource=resource, issuers=issuers, authorization_servers=auth_servers,
        scopes=_scopes(t.get("scopes"), servers),
        leeway_s=_seconds(t.get("leeway_seconds", 30), "oauth.leeway_seconds", zero=True),
        jwks_cache_s=_seconds(t.get("jwks_cache_seconds", 300), "oauth.jwks_cache_seconds"),
        jwks_refetch_s=_seconds(t.get("jwks_refetch_seconds", 30), "oauth.jwks_refetch_seconds", zero=True))


def _issuer(t: Any, where: str, *, base: Path, resource: str, claim: str) -> Issuer:
    if not isinstance(t, dict):
        raise GatewayConfigError(f"{where}: expected a table")
    _known(t, where, _ISSUER)
    issuer = t.get("issuer")
    if not isinstance(issuer, str) or not issuer:
        raise GatewayConfigError(f"{where}.issuer: expected the issuer identifier exactly as tokens carry it in iss")
    url, file = t.get("jwks_url"), t.get("jwks_file")
    if (url is None) == (file is None):
        raise GatewayConfigError(f"{where}: give exactly one of jwks_url = \"https://...\" or jwks_file = \"...\"")
    if file is not None and (not isinstance(file, str) or not file):
        raise GatewayConfigError(f"{where}.jwks_file: expected a file path")
    path = None if file is None else Path(file).expanduser()
    return Issuer(issuer=issuer, audience=_url(t.get("audience", resource), f"{where}.audience"),
                  agent_claim=_word(t.get("agent_claim", claim), f"{where}.agent_claim"),
                  jwks_url=None if url is None else _url(url, f"{where}.jwks_url"),
                  jwks_file=None if path is None else str(path if path.is_absolute() else base / path))


def _scopes(t: Any, servers: dict[str, ServerConfig]) -> dict[str, tuple[str, ...]]:
    if not isinstance(t, dict) or not t:
        raise GatewayConfigError("oauth.scopes: expected a table of scope = [\"SERVER/TOOL\", \"SERVER/*\", ...]")
    out: dict[str, tuple[str, ...]] = {}
    for scope, entries in t.items():
        where = f"oauth.scopes.\"{scope}\""
        if not scope or any(c in scope for c in ' "\\') or not scope.isprintable():
            raise GatewayConfigError(f"{where}: a scope is printable, without spaces, quotes or backslashes")
        if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
            raise GatewayConfigError(f"{where}: expected a list of \"SERVER/TOOL\" or \"SERVER/*\" strings")
        for i, entry in enumerate(entries):
            server, sep, tool = entry.partition("/")
            if not sep or not tool:
                raise GatewayConfigError(f"{where}[{i}]: expected \"SERVER/TOOL\" or \"SERVER/*\", got {entry!r}")
            if server not in servers:
                raise GatewayConfigError(f"{where}[{i}]: no server {server!r} is configured "
                                         f"(servers: {sorted(servers)})")
        out[scope] = tuple(entries)
    return out


def _url(value: object, key: str) -> str:
    """An absolute https URL (http only on a loopback host, for local set-ups and tests)."""
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("https", "http") or not parts.hostname:
        raise GatewayConfigError(f"{key}: expected an absolute https URL, got {value!r}")
    if parts.scheme == "http" and parts.hostname not in _LOOPBACK:
        raise GatewayConfigError(f"{key}: expected https (http only for 127.0.0.1 or localhost), got {value!r}")
    return str(value)


def _word(value: object, key: str) -> str:
    if not isinstance(value, str) or not value or not value.isprintable() or " " in value:
        raise GatewayConfigError(f"{key}: expected a claim name such as \"sub\" or \"client_id\", got {value!r}")
    return value


def _seconds(value: object, key: str, *, zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0 or (value == 0 and not zero):
        raise GatewayConfigError(f"{key}: expected a number of seconds {'>= 0' if zero else '> 0'}, got {value!r}")
    return float(value)


def _known(t: dict[str, Any], where: str, allowed: set[str]) -> None:
    for key in t:
        if key not in allowed:
            raise GatewayConfigError(f"{where}.{key}: unknown key (expected one of {sorted(allowed)})")
