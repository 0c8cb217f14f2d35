"""The gateway's OAuth resource-server core: token validation, grants, challenges, metadata, the
[oauth] configuration, the JWKS cache (from a file, with a test clock) and the scope rule in the gate."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from sealtrail.errors import UnavailableError
from services.gateway import config
from services.gateway.oauth import (
    Grant,
    InsufficientScopeError,
    Issuer,
    OAuthConfig,
    TokenRejectedError,
    challenge,
    metadata,
    metadata_url,
    scope_for,
    validate,
)
from services.gateway.oauth_http import OAuthGuard, read_body, replaying
from services.gateway.oauth_jwks import JwksCache
from services.gateway.policy import decide, visible
from tests.support.oauth_issuer import TokenIssuer, new_key, unsigned

RESOURCE = "https://gw.example.com/mcp"
ISS = "https://auth.example.com"


class Keys:
    """An in-memory key source: the issuer's current JWKS, looked up by kid."""

    def __init__(self, issuer: TokenIssuer) -> None:
        self.issuer = issuer

    async def key(self, issuer: Issuer, kid: str | None, alg: str) -> dict[str, Any] | None:
        return next((k for k in self.issuer.jwks()["keys"] if k["kid"] == kid), None)

    async def close(self) -> None:
        return None


def _cfg(resource: str = RESOURCE) -> OAuthConfig:
    return OAuthConfig(resource=resource, issuers={ISS: Issuer(ISS, resource)}, authorization_servers=(ISS,),
                       scopes={"tools.read": ("demo/echo", "demo/add"), "tools.all": ("demo/*",)}, leeway_s=5)


@pytest.fixture(scope="module")
def issuer() -> TokenIssuer:
    i = TokenIssuer(ISS, RESOURCE)
    for kid, alg in (("rsa-1", "RS256"), ("ec-1", "ES256"), ("ed-1", "EdDSA")):
        i.add_key(kid, alg)
    return i


async def _check(token: str, issuer: TokenIssuer, cfg: OAuthConfig | None = None, now: float | None = None) -> Grant:
    return await validate(token, cfg=cfg or _cfg(), keys=Keys(issuer), now=now or time.time())


@pytest.mark.parametrize("kid", ["rsa-1", "ec-1", "ed-1"])
async def test_a_valid_token_of_each_algorithm_gives_its_agent_and_tools(issuer: TokenIssuer, kid: str) -> None:
    """RS256, ES256 and EdDSA tokens verify; the sub claim is the agent, the scope the tools."""
    grant = await _check(issuer.mint(kid), issuer)
    assert grant.agent == "agent-7" and grant.issuer == ISS
    assert grant.scopes == {"tools.read"} and grant.tools == {"demo/echo", "demo/add"}


async def test_expiry_and_not_before_with_leeway(issuer: TokenIssuer) -> None:
    """exp in the past and nbf in the future are refused beyond the leeway, accepted within it."""
    now = time.time()
    with pytest.raises(TokenRejectedError, match="expired"):
        await _check(issuer.mint(exp=int(now) - 10), issuer, now=now)
    await _check(issuer.mint(exp=int(now) - 2), issuer, now=now)
    with pytest.raises(TokenRejectedError, match="not valid yet"):
        await _check(issuer.mint(nbf=int(now) + 60), issuer, now=now)
    await _check(issuer.mint(nbf=int(now) + 2), issuer, now=now)
    with pytest.raises(TokenRejectedError, match="no numeric exp"):
        await _check(issuer.mint(exp=None), issuer, now=now)


async def test_audience_must_name_this_resource(issuer: TokenIssuer) -> None:
    """aud is the gateway's resource URI (RFC 8707); a list containing it is fine, another one is not."""
    with pytest.raises(TokenRejectedError, match="audience"):
        await _check(issuer.mint(aud="https://other.example.com/mcp"), issuer)
    with pytest.raises(TokenRejectedError, match="audience"):
        await _check(issuer.mint(aud=None), issuer)
    await _check(issuer.mint(aud=["https://other.example.com", RESOURCE]), issuer)


async def test_wrong_issuer_is_refused_even_with_a_known_key(issuer: TokenIssuer) -> None:
    """A token signed by a configured key but naming another issuer is refused."""
    with pytest.raises(TokenRejectedError, match="issuer"):
        await _check(issuer.mint(iss="https://evil.example.com"), issuer)


async def test_unsigned_and_symmetric_tokens_are_refused(issuer: TokenIssuer) -> None:
    """alg none, and HS256 keyed with the issuer's public key (algorithm confusion), never verify."""
    with pytest.raises(TokenRejectedError, match="algorithm 'none'"):
        await _check(unsigned(issuer.claims(), kid="rsa-1"), issuer)
    pem = issuer.keys["rsa-1"][1].public_key().public_bytes(serialization.Encoding.PEM,
                                                             serialization.PublicFormat.SubjectPublicKeyInfo)
    forged = _hs256(issuer.claims(), pem, kid="rsa-1")
    with pytest.raises(TokenRejectedError, match="algorithm 'HS256'"):
        await _check(forged, issuer)


def _hs256(claims: dict[str, Any], secret: bytes, *, kid: str) -> str:
    import hashlib
    import hmac

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    body = b64(json.dumps(claims).encode())
    sig = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(sig)}"


async def test_signature_key_and_type_mismatches_are_refused(issuer: TokenIssuer) -> None:
    """Another key under a known kid, an unknown kid, and an ES256 header on an RSA key all fail."""
    with pytest.raises(TokenRejectedError, match="signature does not verify"):
        await _check(issuer.mint("rsa-1", key=new_key("RS256")), issuer)
    with pytest.raises(TokenRejectedError, match="not among the issuer's current keys"):
        await _check(issuer.mint("gone", key=new_key("RS256"), alg="RS256"), issuer)
    with pytest.raises(TokenRejectedError, match="does not fit"):
        await _check(issuer.mint("rsa-1", key=issuer.keys["ec-1"][1], alg="ES256"), issuer)
    for junk in ("sgk_not-a-jwt", "a.b", "e30.e30.e30.e30", "e30.e30=.sig", "W10.e30.", "e30.!!.x"):
        with pytest.raises(TokenRejectedError, match="not a JWT"):
            await _check(junk, issuer)
    _, body, sig = issuer.mint("ec-1").split(".")
    crit = base64.urlsafe_b64encode(json.dumps({"alg": "ES256", "kid": "ec-1", "crit": ["b64"], "b64": False})
                                    .encode()).rstrip(b"=").decode()
    with pytest.raises(TokenRejectedError, match="critical header"):
        await _check(f"{crit}.{body}.{sig}", issuer)
    tampered = issuer.mint("rsa-1").split(".")
    tampered[1] = base64.urlsafe_b64encode(json.dumps(issuer.claims(sub="admin")).encode()).rstrip(b"=").decode()
    with pytest.raises(TokenRejectedError, match="signature"):
        await _check(".".join(tampered), issuer)


async def test_scopes_that_give_nothing_are_insufficient(issuer: TokenIssuer) -> None:
    """A valid token whose scopes map to no tool gets insufficient_scope; scp lists count too."""
    with pytest.raises(InsufficientScopeError, match=r"tools\.all, tools\.read"):
        await _check(issuer.mint(scope="profile email"), issuer)
    with pytest.raises(InsufficientScopeError):
        await _check(issuer.mint(scope=None), issuer)
    grant = await _check(issuer.mint(scope=None, scp=["tools.all", "x"]), issuer)
    assert grant.tools == {"demo/*"}


async def test_the_agent_claim_must_be_a_usable_name(issuer: TokenIssuer) -> None:
    """The configured claim (client_id here) names the agent; missing or '@'-prefixed is refused."""
    cfg = _cfg()
    cfg = OAuthConfig(resource=cfg.resource, issuers={ISS: Issuer(ISS, RESOURCE, agent_claim="client_id")},
                      authorization_servers=cfg.authorization_servers, scopes=cfg.scopes)
    assert (await _check(issuer.mint(client_id="crm-bot"), issuer, cfg)).agent == "crm-bot"
    for bad in (None, "@approver", "#operator", "", "a\nb", 7):
        with pytest.raises(TokenRejectedError, match="client_id claim"):
            await _check(issuer.mint(client_id=bad), issuer, cfg)


def test_challenges_and_metadata() -> None:
    """401/403 challenges carry the RFC 9728 metadata URL; the document names servers and scopes."""
    cfg = _cfg()
    url = "https://gw.example.com/.well-known/oauth-protected-resource/mcp"
    assert metadata_url(RESOURCE) == url
    assert metadata_url("https://gw.example.com") == "https://gw.example.com/.well-known/oauth-protected-resource"
    assert challenge(cfg) == f'Bearer resource_metadata="{url}"'
    assert challenge(cfg, TokenRejectedError('the "token" has expired')) == (
        f'Bearer resource_metadata="{url}", error="invalid_token", error_description="the \'token\' has expired"')
    assert challenge(cfg, InsufficientScopeError("x")) == (
        f'Bearer resource_metadata="{url}", error="insufficient_scope", scope="tools.all tools.read"')
    assert metadata(cfg, name="gw") == {"resource": RESOURCE, "authorization_servers": [ISS],
                                        "scopes_supported": ["tools.all", "tools.read"],
                                        "bearer_methods_supported": ["header"], "resource_name": "gw"}


GATEWAY = """
policy_id = "p"
[ledger]
url = "http://127.0.0.1:1"
token_file = "t"
[state]
database = "s.db"
[servers.demo]
command = ["x"]
tier_default = "read"
[servers.demo.tools.echo]
[servers.demo.tools.add]
[servers.demo.tools.delete_record]
tier = "destructive"
[agents.alice]
allow = ["demo/echo", "demo/delete_record"]
"""
OAUTH = """
[oauth]
resource = "https://gw.example.com/mcp"
agent_claim = "client_id"
leeway_seconds = 10
[oauth.scopes]
"tools.read" = ["demo/echo", "demo/add"]
"tools.admin" = ["demo/*"]
[[oauth.issuers]]
issuer = "https://auth.example.com"
jwks_url = "https://auth.example.com/jwks.json"
[[oauth.issuers]]
issuer = "https://local.example.com"
jwks_file = "keys/jwks.json"
agent_claim = "sub"
audience = "https://gw.example.com"
"""


def test_the_oauth_table_parses(tmp_path: Path) -> None:
    """Issuers by URL and by file (relative to the config), audience defaulting to the resource,
    authorization servers defaulting to the issuers."""
    cfg = config.parse(_toml(GATEWAY + OAUTH), path=tmp_path / "g.toml").oauth
    assert cfg is not None and cfg.resource == RESOURCE and cfg.leeway_s == 10
    assert cfg.authorization_servers == ("https://auth.example.com", "https://local.example.com")
    first, second = cfg.issuers.values()
    assert (first.audience, first.agent_claim, first.jwks_url) == (RESOURCE, "client_id",
                                                                    "https://auth.example.com/jwks.json")
    assert (second.audience, second.agent_claim, second.jwks_file) == (
        "https://gw.example.com", "sub", str(tmp_path / "keys/jwks.json"))
    assert cfg.scopes["tools.admin"] == ("demo/*",)
    assert config.parse(_toml(GATEWAY), path=tmp_path / "g.toml").oauth is None


@pytest.mark.parametrize(("change", "message"), [
    (("resource = \"https://gw.example.com/mcp\"", "resource = \"http://gw.example.com/mcp\""),
     "oauth.resource: expected https"),
    (("resource = \"https://gw.example.com/mcp\"", "resource = \"https://gw.example.com/mcp#x\""),
     "no query or fragment"),
    (("jwks_file = \"keys/jwks.json\"", "jwks_file = \"k\"\njwks_url = \"https://x/j\""),
     r"oauth.issuers\[1\]: give exactly one"),
    (("\"demo/*\"", "\"other/*\""), r"oauth.scopes.\"tools.admin\"\[0\]: no server 'other'"),
    (("leeway_seconds = 10", "leeway = 10"), "oauth.leeway: unknown key"),
    (("agent_claim = \"sub\"", "agent_claim = \"\""), r"oauth.issuers\[1\].agent_claim"),
])
def test_bad_oauth_tables_are_refused_naming_the_key(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    """Each bad value is refused with the key that holds it."""
    with pytest.raises(config.GatewayConfigError, match=message):
        config.parse(_toml(GATEWAY + OAUTH.replace(*change)), path=tmp_path / "g.toml")


def _toml(text: str) -> dict[str, Any]:
    import tomllib

    return tomllib.loads(text)


def test_the_gate_intersects_scopes_with_the_agents_allow_list(tmp_path: Path) -> None:
    """A configured agent gets allow-list AND scopes; an unconfigured one gets the scopes alone;
    without a grant (gateway keys) nothing changes."""
    cfg = config.parse(_toml(GATEWAY + OAUTH), path=tmp_path / "g.toml")
    read = frozenset({"demo/echo", "demo/add"})
    assert decide(cfg, "alice", "demo", "echo", read).decision == "allow"
    assert decide(cfg, "alice", "demo", "add", read).reason == "not_allowed"  # scope has it, allow-list not
    assert decide(cfg, "alice", "demo", "delete_record", read).reason == "insufficient_scope"
    assert decide(cfg, "alice", "demo", "delete_record", frozenset({"demo/*"})).decision == "step_up"
    assert decide(cfg, "alice", "demo", "delete_record").decision == "step_up"
    assert decide(cfg, "crm-bot", "demo", "add", read).decision == "allow"
    assert decide(cfg, "crm-bot", "demo", "delete_record", read).reason == "insufficient_scope"
    assert decide(cfg, "crm-bot", "demo", "echo").reason == "unknown_agent"
    assert visible(cfg, "crm-bot", "demo", "add", read) and not visible(cfg, "crm-bot", "demo", "delete_record", read)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


async def test_jwks_file_rotation_refetch_rate_limit_and_failure(tmp_path: Path) -> None:
    """An unknown kid refetches once (rate-limited); the refetched set replaces the old one, so a
    removed key stops verifying; a broken file keeps the last good set; no set at all is 503."""
    test_issuer = TokenIssuer(ISS, RESOURCE)
    test_issuer.add_key("k1")
    path = tmp_path / "jwks.json"
    test_issuer.write_jwks(path)
    iss = Issuer(ISS, RESOURCE, jwks_file=str(path))
    clock = Clock()
    cache = JwksCache(cache_s=300, refetch_s=10, clock=clock)
    assert (await cache.key(iss, "k1", "RS256")) is not None and cache.fetches == 1
    test_issuer.add_key("k2")
    test_issuer.remove_key("k1")
    test_issuer.write_jwks(path)
    assert await cache.key(iss, "k2", "RS256") is None and cache.fetches == 1  # within the refetch interval
    assert await cache.key(iss, "k1", "RS256") is not None  # not refetched yet: the cached set still has it
    clock.t += 10
    assert await cache.key(iss, "k2", "RS256") is not None and cache.fetches == 2
    assert await cache.key(iss, "k1", "RS256") is None and cache.fetches == 2  # removed; no second refetch
    clock.t += 300
    path.write_text("{not json")
    assert await cache.key(iss, "k2", "RS256") is not None and cache.fetches == 3  # last good set stays
    missing = JwksCache(cache_s=300, refetch_s=10, clock=clock)
    with pytest.raises(UnavailableError, match="cannot be had"):
        await missing.key(Issuer(ISS, RESOURCE, jwks_file=str(tmp_path / "nope.json")), "k1", "RS256")
    await cache.close()
    await missing.close()


async def test_jwks_keeps_usable_keys_beside_unusable_ones(tmp_path: Path) -> None:
    """Symmetric and encryption keys in a JWKS are ignored; the signing keys next to them are used."""
    test_issuer = TokenIssuer(ISS, RESOURCE)
    test_issuer.add_key("k1", "ES256")
    doc = test_issuer.jwks()
    doc["keys"] = [{"kty": "oct", "k": "c2VjcmV0", "kid": "hs"},
                   {**doc["keys"][0], "kid": "enc", "use": "enc"}, "junk", *doc["keys"]]
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(doc))
    cache = JwksCache(cache_s=300, refetch_s=0, clock=Clock())
    iss = Issuer(ISS, RESOURCE, jwks_file=str(path))
    assert await cache.key(iss, "hs", "RS256") is None and await cache.key(iss, "enc", "ES256") is None
    token = test_issuer.mint("k1")
    grant = await validate(token, cfg=_cfg(), keys=_FromCache(cache, iss), now=time.time())
    assert grant.agent == "agent-7"
    assert jwt.get_unverified_header(token)["alg"] == "ES256"
    await cache.close()


class _FromCache:
    def __init__(self, cache: JwksCache, iss: Issuer) -> None:
        self.cache, self.iss = cache, iss

    async def key(self, issuer: Issuer, kid: str | None, alg: str) -> dict[str, Any] | None:
        return await self.cache.key(self.iss, kid, alg)

    async def close(self) -> None:
        await self.cache.close()


def test_refusals_at_the_http_edge() -> None:
    """No token and a rejected one are 401 with the challenge, a scope-less token 403, unavailable
    keys 503 with Retry-After and no challenge; the metadata routes cover the resource's path."""
    guard = OAuthGuard(_cfg("https://gw.example.com/tenant-a/mcp"), Keys(TokenIssuer(ISS, RESOURCE)), name="gw")
    url = "https://gw.example.com/.well-known/oauth-protected-resource/tenant-a/mcp"
    none = guard.refusal()
    assert none.status_code == 401 and none.headers["WWW-Authenticate"] == f'Bearer resource_metadata="{url}"'
    rejected = guard.refusal(TokenRejectedError("the token has expired"))
    assert rejected.status_code == 401 and 'error="invalid_token"' in rejected.headers["WWW-Authenticate"]
    scope = guard.refusal(InsufficientScopeError("no tool"))
    assert scope.status_code == 403 and 'error="insufficient_scope"' in scope.headers["WWW-Authenticate"]
    down = guard.refusal(UnavailableError("keys cannot be had", retry_after=5))
    assert down.status_code == 503 and down.headers["Retry-After"] == "5" and "WWW-Authenticate" not in down.headers
    assert sorted(r.path for r in guard.routes()) == [
        "/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource/tenant-a/mcp"]


def test_the_step_up_scope_and_its_challenge() -> None:
    """The narrowest scope that opens a tool is the one a step-up 403 names."""
    cfg = OAuthConfig(resource=RESOURCE, issuers={}, authorization_servers=(ISS,),
                      scopes={"all": ("demo/*", "crm/*"), "demo": ("demo/*",), "add": ("demo/add",)})
    assert scope_for(cfg, "demo", "add") == "add" and scope_for(cfg, "demo", "echo") == "demo"
    assert scope_for(cfg, "crm", "x") == "all" and scope_for(cfg, "fs", "read") is None
    assert challenge(cfg, InsufficientScopeError("demo__add needs the scope add", scopes=("add",))).endswith(
        'error="insufficient_scope", scope="add", error_description="demo__add needs the scope add"')


async def test_the_body_read_for_a_step_up_is_given_again() -> None:
    """The auth layer's read of the body is replayed whole to the MCP app; a body over the limit is
    not parsed and its rest still comes from the client; a disconnect is passed on."""
    def client(*messages: dict[str, Any]) -> Any:
        queue = list(messages)

        async def receive() -> dict[str, Any]:
            return queue.pop(0)
        return receive

    parts = client({"type": "http.request", "body": b'{"a":', "more_body": True},
                   {"type": "http.request", "body": b"1}", "more_body": False})
    body, first = await read_body(parts, 1024)
    replay = replaying(first, parts)
    assert body == b'{"a":1}' and await replay() == {"type": "http.request", "body": b'{"a":1}', "more_body": False}
    big = client({"type": "http.request", "body": b"x" * 10, "more_body": True},
                 {"type": "http.request", "body": b"y" * 10, "more_body": False})
    body, first = await read_body(big, 5)
    replay = replaying(first, big)
    assert body == b"" and await replay() == {"type": "http.request", "body": b"x" * 10, "more_body": True}
    assert await replay() == {"type": "http.request", "body": b"y" * 10, "more_body": False}
    gone = client({"type": "http.disconnect"})
    body, first = await read_body(gone, 5)
    assert body == b"" and await replaying(first, gone)() == {"type": "http.disconnect"}
