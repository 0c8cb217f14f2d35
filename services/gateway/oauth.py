"""The gateway as an OAuth 2.1 resource server (MCP authorization): JWT access-token validation,
the protected resource metadata document (RFC 9728) and the ``WWW-Authenticate`` challenges.

Pure code: the issuers' keys come through a :class:`KeySource` (the JWKS adapter in
``oauth_jwks.py``, picked by the app factory), the clock is a parameter.

A token is accepted when, in this order: its header names an asymmetric algorithm (``none`` and
``HS*`` are refused before any key is looked at); its ``iss`` is a configured issuer; its ``kid``
names a key of that issuer's JWKS whose type fits the algorithm; the signature verifies; ``aud``
contains the issuer's audience (the gateway's resource URI unless configured otherwise, RFC 8707);
``exp`` has not passed and ``nbf`` has (both within ``leeway``); the agent claim is a usable agent
name. Its scopes then give the tools it may call (:func:`grant_of`); a token whose scopes give none
is refused with ``insufficient_scope``.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

import jwt
from jwt.algorithms import get_default_algorithms

from sealtrail.errors import AuthenticationError, PermissionDeniedError

ALGORITHMS: Mapping[str, tuple[str, str | None]] = {
    "RS256": ("RSA", None), "RS384": ("RSA", None), "RS512": ("RSA", None),
    "PS256": ("RSA", None), "PS384": ("RSA", None), "PS512": ("RSA", None),
    "ES256": ("EC", "P-256"), "ES384": ("EC", "P-384"), "ES512": ("EC", "P-521"),
    "EdDSA": ("OKP", None),
}
"""Accepted ``alg`` values and the JWK key type (and curve) each needs. Nothing symmetric."""
METADATA_PATH = "/.well-known/oauth-protected-resource"
_VERIFIERS = {name: alg for name, alg in get_default_algorithms().items() if name in ALGORITHMS}
_B64URL = re.compile(r"^[A-Za-z0-9_-]*$")
_AGENT = re.compile(r"^[^\x00-\x1f\x7f@#][^\x00-\x1f\x7f]{0,255}$")
"""1 to 256 characters without control characters; ``@`` and ``#`` begin approver and operator names."""
_NUMBER = (int, float)


class TokenRejectedError(AuthenticationError):
    """The bearer token is not a valid access token for this gateway (401 ``invalid_token``)."""


class InsufficientScopeError(PermissionDeniedError):
    """A valid token whose scopes give no tool of this gateway, or not the tool it calls (403
    ``insufficient_scope``); ``scopes`` are the ones to ask for (all configured ones when empty)."""

    def __init__(self, detail: str, *, scopes: tuple[str, ...] = ()) -> None:
        super().__init__(detail)
        self.scopes = scopes


@dataclass(frozen=True, slots=True)
class Issuer:
    issuer: str
    audience: str
    agent_claim: str = "sub"
    jwks_url: str | None = None
    jwks_file: str | None = None


@dataclass(frozen=True, slots=True)
class OAuthConfig:
    """``[oauth]``: the resource URI, the accepted issuers, and which tools each scope gives."""

    resource: str
    issuers: dict[str, Issuer]
    authorization_servers: tuple[str, ...]
    scopes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    leeway_s: float = 30.0
    jwks_cache_s: float = 300.0
    jwks_refetch_s: float = 30.0


@dataclass(frozen=True, slots=True)
class Grant:
    """What one validated token allows: the agent it speaks for, and ``SERVER/TOOL`` / ``SERVER/*`` entries."""

    agent: str
    issuer: str
    scopes: frozenset[str]
    tools: frozenset[str]
    expires_at: float


class KeySource(Protocol):
    """The issuers' public keys (JWKS), fetched and cached by an adapter."""

    async def key(self, issuer: Issuer, kid: str | None, alg: str) -> dict[str, Any] | None:
        """The JWK of ``issuer`` that ``kid`` names (or the only fitting key when ``kid`` is None).

        MUST refetch the issuer's JWKS once when ``kid`` is unknown, no more often than the
        configured refetch interval, and MUST return None (never an old key) for a key the last
        JWKS fetched no longer contains. MUST raise ``UnavailableError`` when no JWKS of the issuer
        could be had at all."""
        ...

    async def close(self) -> None:
        """Release the connections the source holds."""
        ...


@dataclass(frozen=True, slots=True)
class Jws:
    """A compact JWS split and decoded once: its header, its claims, and what the signature covers."""

    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes
    signature: bytes


def parse(token: str) -> Jws:
    """Split and decode a compact JWS (strict base64url, JSON objects); nothing is verified yet."""
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenRejectedError("the bearer token is not a JWT")
    try:
        header, claims = json.loads(_b64(parts[0])), json.loads(_b64(parts[1]))
        signature = _b64(parts[2])
    except (ValueError, binascii.Error) as e:
        raise TokenRejectedError("the bearer token is not a JWT") from e
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise TokenRejectedError("the bearer token is not a JWT")
    return Jws(header, claims, f"{parts[0]}.{parts[1]}".encode(), signature)


def _b64(part: str) -> bytes:
    if not _B64URL.match(part):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def header_of(jws: Jws) -> tuple[str, str | None]:
    """``(alg, kid)``, refusing unsigned and symmetric algorithms and critical extensions."""
    alg, kid = jws.header.get("alg"), jws.header.get("kid")
    if not isinstance(alg, str) or alg not in ALGORITHMS:
        raise TokenRejectedError(f"the token's algorithm {str(alg)[:20]!r} is not accepted "
                                 f"(accepted: {', '.join(ALGORITHMS)})")
    if kid is not None and not isinstance(kid, str):
        raise TokenRejectedError("the token's kid is not a string")
    if "crit" in jws.header:
        raise TokenRejectedError("the token names critical header extensions, none of which this gateway supports")
    return alg, kid


def issuer_of(jws: Jws, cfg: OAuthConfig) -> Issuer:
    """The configured issuer named by the (not yet verified) ``iss``, used only to choose the keys."""
    iss = jws.claims.get("iss")
    issuer = cfg.issuers.get(iss) if isinstance(iss, str) else None
    if issuer is None:
        raise TokenRejectedError("the token's issuer is not accepted by this gateway")
    return issuer


def fits(jwk: Mapping[str, Any], alg: str) -> bool:
    """Whether ``jwk`` may verify a signature made with ``alg`` (key type, curve, declared alg, use)."""
    kty, crv = ALGORITHMS[alg]
    if jwk.get("kty") != kty or jwk.get("use", "sig") != "sig" or jwk.get("alg", alg) != alg:
        return False
    if kty == "OKP":
        return jwk.get("crv") in ("Ed25519", "Ed448")
    return crv is None or jwk.get("crv") == crv


def verify(jws: Jws, *, alg: str, jwk: Mapping[str, Any], issuer: Issuer, cfg: OAuthConfig,
           now: float) -> dict[str, Any]:
    """The token's claims once its signature, ``iss``, ``aud``, ``exp`` and ``nbf`` hold at ``now``."""
    if not fits(jwk, alg):
        raise TokenRejectedError("the key the token names does not fit its algorithm")
    try:
        key = _public_key(json.dumps(jwk, sort_keys=True), alg)
        valid = _VERIFIERS[alg].verify(jws.signing_input, key, jws.signature)
    except jwt.PyJWTError as e:
        raise TokenRejectedError(f"the token cannot be verified ({type(e).__name__})") from e
    if not valid:
        raise TokenRejectedError("the token's signature does not verify")
    _check_claims(jws.claims, issuer, cfg.leeway_s, now)
    return jws.claims


@functools.lru_cache(maxsize=256)
def _public_key(jwk: str, alg: str) -> Any:
    """The key object of a JWK (parsed once: parsing costs about as much as verifying)."""
    return jwt.PyJWK(json.loads(jwk), algorithm=alg).key


def _check_claims(claims: Mapping[str, Any], issuer: Issuer, leeway: float, now: float) -> None:
    if claims.get("iss") != issuer.issuer:
        raise TokenRejectedError("the token's issuer is not accepted by this gateway")
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    if issuer.audience not in audiences:
        raise TokenRejectedError(f"the token's audience is not this gateway's resource {issuer.audience}")
    exp, nbf = claims.get("exp"), claims.get("nbf")
    if not isinstance(exp, _NUMBER) or isinstance(exp, bool):
        raise TokenRejectedError("the token has no numeric exp claim")
    if now > exp + leeway:
        raise TokenRejectedError("the token has expired")
    if nbf is not None and (not isinstance(nbf, _NUMBER) or isinstance(nbf, bool)):
        raise TokenRejectedError("the token's nbf claim is not a number")
    if nbf is not None and now + leeway < nbf:
        raise TokenRejectedError("the token is not valid yet (nbf)")


def scopes_of(claims: Mapping[str, Any]) -> frozenset[str]:
    """``scope`` (space-separated, RFC 9068) or ``scp`` (a list, as some servers issue it)."""
    scope, scp = claims.get("scope"), claims.get("scp")
    if isinstance(scope, str):
        return frozenset(scope.split())
    if isinstance(scp, list):
        return frozenset(s for s in scp if isinstance(s, str))
    return frozenset()


def grant_of(claims: Mapping[str, Any], issuer: Issuer, cfg: OAuthConfig) -> Grant:
    """The agent and tools a verified token's claims give; refuses a token whose scopes give no tool."""
    agent = claims.get(issuer.agent_claim)
    if not isinstance(agent, str) or not _AGENT.match(agent):
        raise TokenRejectedError(f"the token's {issuer.agent_claim} claim is not a usable agent name "
                                 "(1 to 256 characters, no control characters, not starting with '@' or '#')")
    scopes = scopes_of(claims)
    tools = frozenset(t for s in scopes for t in cfg.scopes.get(s, ()))
    if not tools:
        raise InsufficientScopeError(f"the token's scopes give no tool of this gateway; ask for one of: "
                                     f"{', '.join(sorted(cfg.scopes))}")
    return Grant(agent, issuer.issuer, scopes, tools, float(claims["exp"]))


async def validate(token: str, *, cfg: OAuthConfig, keys: KeySource, now: float) -> Grant:
    """The :class:`Grant` of a bearer token, or :class:`TokenRejectedError` / :class:`InsufficientScopeError`."""
    jws = parse(token)
    alg, kid = header_of(jws)
    issuer = issuer_of(jws, cfg)
    jwk = await keys.key(issuer, kid, alg)
    if jwk is None:
        raise TokenRejectedError("the key the token names is not among the issuer's current keys")
    return grant_of(verify(jws, alg=alg, jwk=jwk, issuer=issuer, cfg=cfg, now=now), issuer, cfg)


def covers(entries: frozenset[str] | tuple[str, ...], server: str, tool: str) -> bool:
    """Whether allow-list ``entries`` name ``server``'s ``tool`` (``SERVER/TOOL`` or ``SERVER/*``)."""
    return f"{server}/{tool}" in entries or f"{server}/*" in entries


def scope_for(cfg: OAuthConfig, server: str, tool: str) -> str | None:
    """The narrowest configured scope that gives ``server``'s ``tool`` (fewest entries, then name)."""
    giving = [(len(entries), scope) for scope, entries in cfg.scopes.items() if covers(entries, server, tool)]
    return min(giving)[1] if giving else None


def metadata_url(resource: str) -> str:
    """The RFC 9728 metadata URL of ``resource``: the well-known path inserted before the resource's path."""
    parts = urlsplit(resource)
    path = parts.path.rstrip("/")
    return f"{parts.scheme}://{parts.netloc}{METADATA_PATH}{path}"


def metadata(cfg: OAuthConfig, *, name: str) -> dict[str, Any]:
    """The protected resource metadata document (RFC 9728 section 2)."""
    return {"resource": cfg.resource, "authorization_servers": list(cfg.authorization_servers),
            "scopes_supported": sorted(cfg.scopes), "bearer_methods_supported": ["header"],
            "resource_name": name}


def challenge(cfg: OAuthConfig, error: Exception | None = None) -> str:
    """The ``WWW-Authenticate`` value for a 401 or 403: ``Bearer resource_metadata="..."``, with
    ``error`` and ``error_description`` for a rejected token and ``scope`` for a missing scope."""
    params = [f'resource_metadata="{metadata_url(cfg.resource)}"']
    if isinstance(error, InsufficientScopeError):
        params += ['error="insufficient_scope"', f'scope="{" ".join(error.scopes or sorted(cfg.scopes))}"']
        if error.scopes:
            params.append(f'error_description="{_quoted(str(error))}"')
    elif isinstance(error, TokenRejectedError):
        params += ['error="invalid_token"', f'error_description="{_quoted(str(error))}"']
    return "Bearer " + ", ".join(params)


def _quoted(text: str) -> str:
    """RFC 6750 error_description: printable ASCII without ``"`` and ``\\``."""
    return "".join(c if " " <= c <= "~" and c not in '"\\' else "'" for c in text)[:300]
