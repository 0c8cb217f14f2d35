"""The gateway as an OAuth 2.1 resource server, end to end: a real ``mcp`` client over Streamable
HTTP presents access tokens minted by test issuers (one JWKS served over HTTP on 127.0.0.1, one
read from a file); the gateway serves its protected resource metadata, refuses bad tokens with the
challenge, maps claims and scopes to agents and tools, and forwards no token to the upstream (a
Python MCP server over Streamable HTTP that records every header it receives)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp.shared.exceptions import MCPError

from tests.support.gateway import ROOT, Setup, agent, wait_events, write_setup
from tests.support.oauth_issuer import JwksServer, TokenIssuer, unsigned
from tests.support.serve import Served, cli, free_port, start_serve

FILE_ISSUER = "https://file-issuer.example"
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
OAUTH = """
[servers.rec]
url = "http://127.0.0.1:{rec_port}/mcp"
tier_default = "read"

[servers.rec.tools.whoami]
[servers.rec.tools.secret]

[oauth]
resource = "{resource}"
jwks_refetch_seconds = 1

[oauth.scopes]
"tools.read" = ["demo/echo", "rec/whoami"]
"tools.secret" = ["rec/secret"]

[[oauth.issuers]]
issuer = "{url_issuer}"
jwks_url = "{jwks_url}"

[[oauth.issuers]]
issuer = "{file_issuer}"
jwks_file = "file-issuer.jwks.json"
agent_claim = "client_id"
"""


@dataclass
class World:
    setup: Setup
    served: Served
    url_issuer: TokenIssuer
    jwks: JwksServer
    file_issuer: TokenIssuer
    record: Path

    @property
    def gw(self) -> str:
        return self.setup.gateways[0].url

    def seen_headers(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.record.read_text().splitlines()]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    s = start_serve(tmp_path_factory.mktemp("gwo-ledger") / "data")
    yield s
    s.stop()


@contextlib.contextmanager
def _recorder(record: Path) -> Iterator[int]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tests.support.header_recording_server", "--port", str(port),
                             "--record", str(record)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the header-recording server exited: {proc.stderr.read()[-2000:]!r}")  # type: ignore[union-attr]
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
                break
            if time.monotonic() > deadline:
                raise RuntimeError("the header-recording server did not answer within 30 s")
            time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def world(served: Served, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One gateway for the module (the rotation tests, which change the issuers' keys, come last)."""
    tmp_path = tmp_path_factory.mktemp("gwo")
    jwks_issuer = TokenIssuer("", "")
    jwks = JwksServer(jwks_issuer)
    port = free_port()
    resource = f"http://127.0.0.1:{port}/mcp"
    jwks_issuer.issuer, jwks_issuer.audience = f"http://127.0.0.1:{jwks.httpd.server_address[1]}", resource
    jwks_issuer.add_key("k1", "RS256")
    file_issuer = TokenIssuer(FILE_ISSUER, resource)
    file_issuer.add_key("f1", "EdDSA")
    file_issuer.write_jwks(tmp_path / "file-issuer.jwks.json")
    record = tmp_path / "upstream-headers.jsonl"
    with _recorder(record) as rec_port:
        extra = OAUTH.format(rec_port=rec_port, resource=resource, url_issuer=jwks_issuer.issuer,
                             jwks_url=jwks.url, file_issuer=FILE_ISSUER)
        setup = write_setup(tmp_path, served, extra=extra, port=port)
        setup.start()
        try:
            yield World(setup, served, jwks_issuer, jwks, file_issuer, record)
        finally:
            setup.stop_all()
            jwks.stop()


def _post(w: World, token: str | None) -> httpx.Response:
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.post(w.gw + "/mcp", json=INIT, headers=headers, timeout=10)


def test_metadata_and_the_401_challenge(world: World) -> None:
    """RFC 9728 metadata at the root and the path-suffixed well-known URL; a request without a token
    gets 401 whose challenge names the metadata URL, built from the configured resource."""
    resource = f"{world.gw}/mcp"
    for path in ("/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"):
        doc = httpx.get(world.gw + path, timeout=10).json()
        assert doc == {"resource": resource, "authorization_servers": [world.url_issuer.issuer, FILE_ISSUER],
                       "scopes_supported": ["tools.read", "tools.secret"], "bearer_methods_supported": ["header"],
                       "resource_name": "Sealtrail gateway gateway"}
    refused = _post(world, None)
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"] == (
        f'Bearer resource_metadata="{world.gw}/.well-known/oauth-protected-resource/mcp"')
    assert refused.headers["Content-Type"] == "application/problem+json"


@pytest.mark.parametrize("case", ["expired", "not_yet_valid", "wrong_audience", "wrong_issuer", "unsigned",
                                  "unknown_key", "agent_key_unknown"])
def test_bad_tokens_get_401_invalid_token(world: World, case: str) -> None:
    """Each bad token is refused before any MCP message is read, with error="invalid_token"."""
    i, now = world.url_issuer, int(time.time())
    token = {
        "expired": lambda: i.mint(exp=now - 120),
        "not_yet_valid": lambda: i.mint(nbf=now + 600),
        "wrong_audience": lambda: i.mint(aud="http://127.0.0.1:1/mcp"),
        "wrong_issuer": lambda: i.mint(iss=FILE_ISSUER),
        "unsigned": lambda: unsigned(i.claims(), kid="k1"),
        "unknown_key": lambda: world.file_issuer.mint("f1", iss=i.issuer),
        "agent_key_unknown": lambda: "sgk_0123456789abcdef_" + "A" * 43,
    }[case]()
    refused = _post(world, token)
    assert refused.status_code == 401, refused.text
    challenge = refused.headers["WWW-Authenticate"]
    assert challenge.startswith(f'Bearer resource_metadata="{world.gw}/.well-known/oauth-protected-resource/mcp", '
                                'error="invalid_token", error_description="')
    secret = token.split(".")[1][-20:] if "." in token else token[-20:]
    assert token not in refused.text and secret not in refused.text + challenge


async def test_a_real_client_is_refused_with_an_expired_token(world: World) -> None:
    """The mcp client gets no session with an expired token."""
    with pytest.raises(Exception):  # noqa: B017 - the SDK raises its own error for the 401
        async with agent(world.gw, world.url_issuer.mint(exp=int(time.time()) - 120)) as c:
            await c.list_tools()


def test_a_token_without_a_mapped_scope_gets_403(world: World) -> None:
    """A valid token whose scopes give no tool: 403 insufficient_scope naming the scopes to ask for."""
    refused = _post(world, world.url_issuer.mint(scope="profile"))
    assert refused.status_code == 403
    assert refused.headers["WWW-Authenticate"] == (
        f'Bearer resource_metadata="{world.gw}/.well-known/oauth-protected-resource/mcp", '
        'error="insufficient_scope", scope="tools.read tools.secret"')


async def test_scopes_give_tools_and_no_token_reaches_the_upstream(world: World) -> None:
    """An unconfigured agent (sub crm-bot) sees and calls exactly its scopes' tools; a tool outside
    them is denied and recorded; a configured agent (bob) gets allow-list AND scopes; gateway keys
    keep working. The upstream saw none of the tokens, nor any Authorization header."""
    token = world.url_issuer.mint(sub="crm-bot", scope="tools.read")
    async with agent(world.gw, token) as c:
        assert sorted(t.name for t in (await c.list_tools()).tools) == ["demo__echo", "rec__whoami"]
        assert (await c.call_tool("rec__whoami", {})).content[0].text == "the header recorder"  # type: ignore[union-attr]
        with pytest.raises(MCPError, match="insufficient scope"):  # no scope opens demo/add: answered in-band
            await c.call_tool("demo__add", {"a": 1, "b": 2})
        with pytest.raises(MCPError, match="error response"):  # tools.secret would: the step-up 403
            await c.call_tool("rec__secret", {"name": "x"})
    bob = world.url_issuer.mint(sub="bob", scope="tools.read tools.secret")
    async with agent(world.gw, bob) as c:
        assert [t.name for t in (await c.list_tools()).tools] == ["demo__echo"]
    async with agent(world.gw, world.file_issuer.mint("f1", client_id="file-bot", scope="tools.secret")) as c:
        assert (await c.call_tool("rec__secret", {"name": "y"})).content[0].text == "secret y"  # type: ignore[union-attr]
    async with agent(world.gw, world.setup.key("alice")) as c:
        assert (await c.call_tool("demo__echo", {"text": "key"})).structured_content is not None
    calls = wait_events(world.served, lambda e: e["type"] == "tool_call" and e["agent_id"] in ("crm-bot", "file-bot"),
                        4)
    assert sorted((e["agent_id"], e["tool_name"], e["status"], e.get("error_type")) for e in calls) == [
        ("crm-bot", "add", "denied", "insufficient_scope"), ("crm-bot", "secret", "denied", "insufficient_scope"),
        ("crm-bot", "whoami", "ok", None), ("file-bot", "secret", "ok", None)]
    seen = world.seen_headers()
    assert any(r["method"] == "POST" for r in seen)
    names = {k for r in seen for k, _ in r["headers"]}
    assert "authorization" not in names
    dump = world.record.read_text()
    for t in (token, bob):
        assert t.split(".")[2] not in dump and t.split(".")[1] not in dump
    assert token.split(".")[2] not in world.setup.gateways[0].stderr()
    stored = b"".join(f.read_bytes() for f in world.served.data_dir.rglob("*") if f.is_file())
    assert token.split(".")[2].encode() not in stored and token.split(".")[1].encode() not in stored


async def test_reload_applies_changed_scopes(world: World) -> None:
    """`gateway reload` applies a changed [oauth.scopes] to the next request's token."""
    token = world.url_issuer.mint(sub="crm-bot", scope="tools.read")
    original = world.setup.config.read_text()
    world.setup.config.write_text(original.replace('"tools.read" = ["demo/echo", "rec/whoami"]',
                                                   '"tools.read" = ["demo/echo", "rec/whoami", "rec/secret"]'))
    try:
        assert cli("gateway", "reload", "--config", str(world.setup.config)).returncode == 0
        for _ in range(50):
            async with agent(world.gw, token) as c:
                if "rec__secret" in {t.name for t in (await c.list_tools()).tools}:
                    assert (await c.call_tool("rec__secret", {"name": "z"})).content[0].text == "secret z"  # type: ignore[union-attr]
                    break
            await asyncio.sleep(0.1)
        else:
            pytest.fail("the reloaded scopes were not applied")
    finally:
        world.setup.config.write_text(original)
        assert cli("gateway", "reload", "--config", str(world.setup.config)).returncode == 0


async def test_a_call_another_scope_would_open_gets_the_step_up_403(world: World) -> None:
    """tools/call of rec/secret with only tools.read: 403 naming tools.secret (the MCP step-up flow),
    recorded as a refusal; bob, whose allow-list lacks rec/secret, is refused in-band instead, since
    no scope would open it for him."""
    call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "rec__secret",
                                                                          "arguments": {"name": "s"}}}
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    token = world.url_issuer.mint(sub="step-bot", scope="tools.read")
    async with httpx.AsyncClient(timeout=10) as http:
        refused = await http.post(world.gw + "/mcp", json=call, headers={**headers, "Authorization": f"Bearer {token}"})
    assert refused.status_code == 403
    assert refused.headers["WWW-Authenticate"] == (
        f'Bearer resource_metadata="{world.gw}/.well-known/oauth-protected-resource/mcp", '
        'error="insufficient_scope", scope="tools.secret", '
        'error_description="rec__secret needs the scope tools.secret"')
    async with agent(world.gw, world.url_issuer.mint(sub="bob", scope="tools.read")) as c:
        with pytest.raises(MCPError, match="not allowed"):
            await c.call_tool("rec__secret", {"name": "s"})
    found = wait_events(world.served, lambda e: e["type"] == "tool_call" and e["agent_id"] == "step-bot", 1)
    assert [(e["tool_name"], e["status"], e.get("error_type")) for e in found] == [
        ("secret", "denied", "insufficient_scope")]


async def test_key_rotation_at_the_issuer(world: World) -> None:
    """The issuer rotates k1 -> k2: the new kid works after one refetch, the removed key is refused,
    and a burst of unknown kids costs the issuer at most one fetch per refetch interval."""
    i = world.url_issuer
    async with agent(world.gw, i.mint("k1", sub="rot")) as c:
        await c.call_tool("demo__echo", {"text": "k1"})
    old = i.mint("k1", sub="rot")  # signed with the key the issuer is about to remove
    before = world.jwks.fetches
    i.add_key("k2", "ES256")
    i.remove_key("k1")
    await asyncio.sleep(1.1)  # past the refetch interval since the first fetch
    async with agent(world.gw, i.mint("k2", sub="rot")) as c:
        await c.call_tool("demo__echo", {"text": "k2"})
    assert world.jwks.fetches == before + 1
    refused = [_post(world, old) for _ in range(5)]
    assert [r.status_code for r in refused] == [401] * 5
    assert "not among the issuer's current keys" in refused[0].headers["WWW-Authenticate"]
    assert world.jwks.fetches <= before + 2


async def test_key_rotation_in_a_jwks_file(world: World) -> None:
    """The file issuer's JWKS file is rewritten with a new key: it verifies after a refetch; the old is refused."""
    i, path = world.file_issuer, world.setup.dir / "file-issuer.jwks.json"
    async with agent(world.gw, i.mint("f1", client_id="file-bot")) as c:
        await c.call_tool("demo__echo", {"text": "f1"})
    old = i.mint("f1", client_id="file-bot")
    i.add_key("f2", "ES256")
    i.remove_key("f1")
    i.write_jwks(path)
    await asyncio.sleep(1.1)
    async with agent(world.gw, i.mint("f2", client_id="file-bot")) as c:
        await c.call_tool("demo__echo", {"text": "f2"})
    assert _post(world, old).status_code == 401
