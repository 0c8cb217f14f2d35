"""What an agent's session needs beyond tools: resources (list, templates, read, subscribe),
prompts (list, get) and completions, forwarded to the upstreams under the same deny-by-default
policy as tools.

Names: a prompt is ``SERVER__PROMPT`` (like a tool); a resource's URI (and a template's) is
``sealtrail://SERVER/`` followed by the upstream's own URI, unchanged. Policy: an agent sees and
uses a server's resources only with ``SERVER/@resources`` on its allow-list, its prompts only with
``SERVER/@prompts`` (``SERVER/*`` covers tools only; ``@`` cannot begin a tool name, so the entries
never mean a tool); with an OAuth token the entry must be granted too. A completion needs the entry
of what it completes (a prompt's argument or a resource template's). ``logging/setLevel`` is not
offered (JSON-RPC "method not found"): upstream log messages are not relayed, as they may echo
arguments.

No event schema fits these requests (a ``tool_call`` names a tool), so none is recorded; each is
counted in ``sealtrail_gateway_forwarded_total{server,method,outcome}`` (no URIs or names: they
may identify people).
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Mapping
from typing import Any

import mcp_types as types
from mcp.server.connection import Connection
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import Server
from mcp.shared.exceptions import MCPError
from prometheus_client import CollectorRegistry, Counter
from pydantic import ValidationError

from services.gateway.config import SEPARATOR
from services.gateway.errors import UpstreamError
from services.gateway.gate import Gateway
from services.gateway.policy import exposed_name, split_name

log = logging.getLogger("sealtrail.gateway")
URI_PREFIX = "sealtrail://"
TIMEOUT_S = 30.0
MAX_PAGES = 100
Who = Callable[[ServerRequestContext[Any, Any]], tuple[str, str | None, frozenset[str] | None]]
_REQUESTS: dict[str, Any] = {
    "resources/list": types.ListResourcesRequest, "resources/templates/list": types.ListResourceTemplatesRequest,
    "resources/read": types.ReadResourceRequest, "resources/subscribe": types.SubscribeRequest,
    "resources/unsubscribe": types.UnsubscribeRequest, "prompts/list": types.ListPromptsRequest,
    "prompts/get": types.GetPromptRequest, "completion/complete": types.CompleteRequest}
_CAPABILITY = {"resources": "resources", "prompts": "prompts", "completion": "completions"}


def wrap_uri(server: str, uri: str) -> str:
    return f"{URI_PREFIX}{server}/{uri}"


def unwrap_uri(uri: str) -> tuple[str, str] | None:
    """``sealtrail://SERVER/URI`` → (SERVER, URI)."""
    if not uri.startswith(URI_PREFIX):
        return None
    server, sep, inner = uri[len(URI_PREFIX):].partition("/")
    return (server, inner) if sep and server and inner else None


class Forwarder:
    def __init__(self, gateway: Gateway, registry: CollectorRegistry) -> None:
        self.gateway = gateway
        self.counted = Counter("sealtrail_gateway_forwarded", "Requests other than tools forwarded or refused "
                               "(not recorded in the ledger: no event schema fits them)",
                               ["server", "method", "outcome"], registry=registry)
        self._subs: dict[tuple[str, str], weakref.WeakSet[Connection]] = {}
        self._sessions: weakref.WeakSet[Connection] = weakref.WeakSet()

    def allowed(self, agent: str, server: str, what: str, grant: frozenset[str] | None) -> bool:
        cfg = self.gateway.cfg
        a, ref = cfg.agents.get(agent), f"{server}/@{what}"
        if server not in cfg.servers or (a is None and grant is None):
            return False
        return (a is None or ref in a.allow) and (grant is None or ref in grant)

    async def servers(self, agent: str, what: str, grant: frozenset[str] | None) -> list[str]:
        """The servers whose ``what`` the agent may use and that offer it."""
        names = []
        for name, upstream in self.gateway.upstreams.items():
            if not self.allowed(agent, name, what, grant):
                continue
            try:
                if _CAPABILITY[what] in await upstream.capabilities():
                    names.append(name)
            except UpstreamError as e:
                log.warning("server %s unavailable for %s: %s", name, what, type(e).__name__)
        return names

    async def ask(self, server: str, method: str, params: dict[str, Any] | None) -> dict[str, Any]:
        upstream = self.gateway.upstreams[server]
        upstream.on_notification = self.notified
        try:
            request = _REQUESTS[method].model_validate({"method": method, **({"params": params} if params else {})})
        except ValidationError as e:
            self.counted.labels(server, method, "invalid").inc()
            raise MCPError(types.INVALID_PARAMS, f"{method}: invalid params ({e.error_count()} errors)") from e
        try:
            result = await upstream.send(request, TIMEOUT_S)
        except (UpstreamError, MCPError):
            self.counted.labels(server, method, "error").inc()
            raise
        self.counted.labels(server, method, "ok").inc()
        return result

    async def pages(self, server: str, method: str, key: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        cursor = None
        for _ in range(MAX_PAGES):
            page = await self.ask(server, method, {"cursor": cursor} if cursor else None)
            items.extend(i for i in page.get(key, []) if isinstance(i, dict))
            cursor = page.get("nextCursor")
            if not cursor:
                break
        return items

    def refuse(self, server: str, method: str, what: str) -> MCPError:
        self.counted.labels(server, method, "denied").inc()
        return MCPError(-32001, f"{method} on server {server!r} is refused by policy {self.gateway.cfg.policy_id} "
                                f"(not on the agent's allow-list: {server}/@{what})")

    def seen(self, connection: Connection | None) -> None:
        if connection is not None:
            self._sessions.add(connection)

    async def subscribe(self, connection: Connection | None, server: str, uri: str, on: bool) -> None:
        key = (server, uri)
        subs = self._subs.setdefault(key, weakref.WeakSet())
        first, had = not subs, connection in subs if connection is not None else False
        if on and connection is not None:
            subs.add(connection)
        elif connection is not None:
            subs.discard(connection)
        if on and first:
            await self.ask(server, "resources/subscribe", {"uri": uri})
        elif not on and had and not subs:
            await self.ask(server, "resources/unsubscribe", {"uri": uri})

    async def notified(self, server: str, method: str, params: dict[str, Any]) -> None:
        """An upstream's resource or prompt notification, passed on to the sessions it concerns."""
        if method == "notifications/resources/updated" and isinstance(params.get("uri"), str):
            targets = list(self._subs.get((server, params["uri"]), ()))
            for c in targets:
                await _quietly(c.send_resource_updated(wrap_uri(server, params["uri"])))
        elif method in ("notifications/resources/list_changed", "notifications/prompts/list_changed"):
            for c in list(self._sessions):
                changed = c.send_resource_list_changed if "resources" in method else c.send_prompt_list_changed
                await _quietly(changed())


async def _quietly(aw: Any) -> None:
    try:
        await aw
    except Exception as e:  # a closed session
        log.info("notification not delivered to a closed session: %s", type(e).__name__)


def register(server: Server[Any], fw: Forwarder, who: Who) -> None:
    """Add the handlers to the agent-facing server (its capabilities follow from them)."""

    def conn(ctx: ServerRequestContext[Any, Any]) -> Connection | None:
        c = getattr(ctx.session, "_connection", None)
        fw.seen(c if isinstance(c, Connection) else None)
        return c if isinstance(c, Connection) else None

    async def list_resources(ctx: ServerRequestContext[Any, Any], _p: Any) -> dict[str, Any]:
        agent, _, grant = who(ctx)
        conn(ctx)
        out = []
        for name in await fw.servers(agent, "resources", grant):
            out += [{**r, "uri": wrap_uri(name, str(r.get("uri", "")))}
                    for r in await fw.pages(name, "resources/list", "resources")]
        return {"resources": out}

    async def list_templates(ctx: ServerRequestContext[Any, Any], _p: Any) -> dict[str, Any]:
        agent, _, grant = who(ctx)
        out = []
        for name in await fw.servers(agent, "resources", grant):
            out += [{**t, "uriTemplate": wrap_uri(name, str(t.get("uriTemplate", "")))}
                    for t in await fw.pages(name, "resources/templates/list", "resourceTemplates")]
        return {"resourceTemplates": out}

    def resource(ctx: ServerRequestContext[Any, Any], uri: Any, method: str) -> tuple[str, str]:
        agent, _, grant = who(ctx)
        target = unwrap_uri(uri) if isinstance(uri, str) else None
        if target is None or target[0] not in fw.gateway.upstreams:
            raise MCPError(types.INVALID_PARAMS, f"{method}: resource URIs of the gateway are {URI_PREFIX}SERVER/URI")
        if not fw.allowed(agent, target[0], "resources", grant):
            raise fw.refuse(target[0], method, "resources")
        return target

    async def read(ctx: ServerRequestContext[Any, Any], _p: Any) -> dict[str, Any]:
        server, uri = resource(ctx, (ctx.params or {}).get("uri"), "resources/read")
        result = await fw.ask(server, "resources/read", {"uri": uri})
        contents = [{**c, "uri": wrap_uri(server, str(c["uri"]))} if isinstance(c, dict) and "uri" in c else c
                    for c in result.get("contents", [])]
        return {**result, "contents": contents}

    async def subscribe(ctx: ServerRequestContext[Any, Any], _p: Any) -> dict[str, Any]:
        server, uri = resource(ctx, (ctx.params or {}).get("uri"), "resources/subscribe")
        if not (await fw.gateway.upstreams[server].capabilities()).get("resources", {}).get("subscribe"):
            raise MCPError(types.METHOD_NOT_FOUND, f"server {server!r} does not offer resource subscriptions")
        await fw.subscribe(conn(ctx), server, uri, True)
        return {}

    async def unsubscribe(ctx: ServerRequestContext[Any, Any], _p: Any) -> dict[str, Any]:
        server, uri = resource(ctx, (ctx.params or {}).get("uri"), "resources/unsubscribe")
        await fw.subscribe(conn(ctx), server, uri, False)
        return {}

    async def list_prompts(ctx: ServerRequestContext[Any, Any], _p: Any) -> dict[str, Any]:
        agent, _, grant = who(ctx)
        conn(ctx)
        out = []
        for name in await fw.servers(agent, "prompts", grant):
            out += [{**p, "name": exposed_name(name, str(p.get("name", "")))}
                    for p in await fw.pages(name, "prompts/list", "prompts")]
        return {"prompts": out}

    def prompt(ctx: ServerRequestContext[Any, Any], name: Any, method: str) -> tuple[str, str]:
        agent, _, grant = who(ctx)
        split = split_name(name) if isinstance(name, str) else None
        if split is None or split[0] not in fw.gateway.upstreams:
            raise MCPError(types.INVALID_PARAMS, f"{method}: prompts of the gateway are named SERVER{SEPARATOR}PROMPT")
        if not fw.allowed(agent, split[0], "prompts", grant):
            raise fw.refuse(split[0], method, "prompts")
        return split

    async def get_prompt(ctx: ServerRequestContext[Any, Any], _p: Any) -> dict[str, Any]:
        raw = ctx.params or {}
        server, name = prompt(ctx, raw.get("name"), "prompts/get")
        return await fw.ask(server, "prompts/get", {**_plain(raw), "name": name})

    async def complete(ctx: ServerRequestContext[Any, Any], _p: Any) -> dict[str, Any]:
        raw = ctx.params or {}
        given = raw.get("ref")
        ref: dict[str, Any] = given if isinstance(given, dict) else {}
        if ref.get("type") == "ref/prompt":
            server, name = prompt(ctx, ref.get("name"), "completion/complete")
            inner = {**ref, "name": name}
        else:
            server, uri = resource(ctx, ref.get("uri"), "completion/complete")
            inner = {**ref, "uri": uri}
        if "completions" not in await fw.gateway.upstreams[server].capabilities():
            raise MCPError(types.METHOD_NOT_FOUND, f"server {server!r} does not offer completions")
        return await fw.ask(server, "completion/complete", {**_plain(raw), "ref": inner})

    for method, handler in (("resources/list", list_resources), ("resources/templates/list", list_templates),
                            ("resources/read", read), ("resources/subscribe", subscribe),
                            ("resources/unsubscribe", unsubscribe), ("prompts/list", list_prompts),
                            ("prompts/get", get_prompt), ("completion/complete", complete)):
        server.add_request_handler(method, _PARAMS[method], handler)


_PARAMS: dict[str, Any] = {
    "resources/list": types.PaginatedRequestParams, "resources/templates/list": types.PaginatedRequestParams,
    "resources/read": types.ReadResourceRequestParams, "resources/subscribe": types.SubscribeRequestParams,
    "resources/unsubscribe": types.UnsubscribeRequestParams, "prompts/list": types.PaginatedRequestParams,
    "prompts/get": types.GetPromptRequestParams, "completion/complete": types.CompleteRequestParams}


def _plain(params: Mapping[str, Any]) -> dict[str, Any]:
    """The agent's params for the upstream, without its ``_meta`` (the agent's connection's)."""
    return {k: v for k, v in params.items() if k != "_meta"}

