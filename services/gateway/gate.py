"""The gateway's call path: ``tools/list`` filtered per agent, and ``tools/call`` through the gate
(policy → ledger check → step-up hold → rate limits → forward) with every decision recorded.

A refused call never reaches the upstream. The arguments and result recorded are the JSON that
crossed the wire: the agent's raw ``arguments`` and the upstream's raw result, which is also what
the agent receives.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from mcp.shared.dispatcher import ProgressFnT
from mcp.shared.exceptions import MCPError

from sealtrail.errors import SealtrailError
from sealtrail.sdk import events
from services.gateway import errors, pinning
from services.gateway.config import GatewayConfig
from services.gateway.discovery import Discovery
from services.gateway.errors import UpstreamError, UpstreamTimeoutError
from services.gateway.holds import hold
from services.gateway.metrics import GatewayMetrics
from services.gateway.policy import Verdict, decide, exposed_name, policy_version, split_name, subjects_of, visible
from services.gateway.ports import GatewayStore
from services.gateway.recorder import Recorder
from services.gateway.status import Refusal
from services.gateway.upstream import Upstream

log = logging.getLogger("sealtrail.gateway")


@dataclass
class Call:
    """One ``tools/call`` as it goes through the gate."""

    agent: str
    session: str | None
    name: str
    arguments: Any
    meta: dict[str, Any] | None
    server: str = "unknown"
    tool: str = ""
    started: float = field(default_factory=time.monotonic)
    event_id: str = field(default_factory=events.uuid7)
    """The id of this call's first event: an approval asked by this call names it."""
    recorded: bool = False
    progress: ProgressFnT | None = None
    """Relays the upstream's progress to the agent (set when the agent asked with a progressToken)."""
    def_hash: str | None = None
    """The hash of the tool's definition in force (its pin), recorded as ``tool_def_hash``."""
    flagged: bool = False
    """The tool's definition changed since it was approved and its policy lets the call through."""
    grant: frozenset[str] | None = None
    """The tools an OAuth access token's scopes allow (None for a gateway key or stdio)."""


class Gateway:
    def __init__(self, cfg: GatewayConfig, *, store: GatewayStore, recorder: Recorder, metrics: GatewayMetrics,
                 upstreams: dict[str, Upstream]) -> None:
        self.store, self.recorder, self.metrics, self.upstreams = store, recorder, metrics, upstreams
        self.guard: Callable[[str], Awaitable[Refusal | None]] | None = None
        """Refuses calls to a disabled or unhealthy server (see ``status.ServerGuard``)."""
        self.apply(cfg)
        self.discovery = Discovery(store, recorder.record)
        self._undecided: set[tuple[str, str]] = set()
        self._connects: dict[str, int] = {}
        self._relists: set[asyncio.Task[None]] = set()
        self.announce: Callable[[str], Awaitable[None]] | None = None
        """Tells open agent sessions that a server's tool list changed."""

    def apply(self, cfg: GatewayConfig) -> None:
        """Take a (re)loaded configuration: new calls are decided under it; sessions stay open."""
        self.cfg = cfg
        self.version = policy_version(cfg)
        for name, server in cfg.servers.items():
            if name in self.upstreams:
                self.upstreams[name].cfg = server

    async def list_tools(self, agent: str, session: str | None,
                         grant: frozenset[str] | None = None) -> list[dict[str, Any]]:
        shown: list[dict[str, Any]] = []
        for name, upstream in self.upstreams.items():
            if name not in self.cfg.servers:
                continue
            try:
                tools = await upstream.tools()
            except (UpstreamError, MCPError) as e:
                log.warning("tools/list of server %s failed: %s", name, type(e).__name__)
                continue
            await self.discovery.listed(name, tools)
            self._connects[name] = upstream.connects
            self._report_undecided(name, tools)
            mine = [t for t in tools if visible(self.cfg, agent, name, t["name"], grant)]
            mine = [t for t in mine if await self._pin_refusal(name, t["name"]) is None]
            shown.extend({**t, "name": exposed_name(name, t["name"])} for t in mine)
        return shown

    async def tools_changed(self, server: str) -> None:
        """An upstream announced a changed tool list: list and pin it again, and pass the notice on
        (``announce``). The listing runs in a task of its own: this runs inside the upstream
        connection's message handler, which must not wait on a request."""
        task = asyncio.create_task(self._relist(server), name=f"gateway-relist-{server}")
        self._relists.add(task)
        task.add_done_callback(self._relists.discard)
        if self.announce is not None:
            await self.announce(server)

    async def _relist(self, server: str) -> None:
        upstream = self.upstreams.get(server)
        if upstream is None:
            return
        try:
            await self.discovery.listed(server, await upstream.tools())
            self._connects[server] = upstream.connects
        except (UpstreamError, MCPError, SealtrailError) as e:  # a task of its own: nobody else would see it
            log.warning("tools/list of server %s after its list changed failed: %s", server, type(e).__name__)

    async def _pin_refusal(self, server: str, tool: str) -> pinning.Refusal | None:
        declared = self.cfg.servers[server].tools.get(tool)
        tier = None if declared is None else (declared.tier or self.cfg.servers[server].tier_default)
        if declared is None or tier is None:
            return None  # undecided: refused by the policy already
        policy = pinning.on_change(declared.on_change or self.cfg.servers[server].on_change, tier)
        return pinning.refusal(await self.discovery.pin(server, tool), policy)

    def _report_undecided(self, server: str, tools: list[dict[str, Any]]) -> None:
        """Log, once per tool, an upstream tool the configuration gives no tier (it stays denied)."""
        declared = self.cfg.servers[server].tools
        for tool in tools:
            key = (server, tool["name"])
            if key not in self._undecided and (tool["name"] not in declared
                                               or not (declared[tool["name"]].tier
                                                       or self.cfg.servers[server].tier_default)):
                self._undecided.add(key)
                log.warning("server %s offers tool %r, which has no tier in the configuration: it is denied "
                            "to every agent until [servers.%s.tools.%s] gives it one", server, tool["name"][:100],
                            server, tool["name"][:100])

    async def call_tool(self, call: Call) -> dict[str, Any]:
        """Gate, forward and record one call; raises ``MCPError`` with the agent's JSON-RPC error."""
        split = split_name(call.name)
        if split is None or split[0] not in self.cfg.servers:
            await self._refuse(call, Verdict("deny", "unknown", "unknown_tool"), "unknown_tool")
            raise MCPError(errors.DENIED, f"unknown tool {call.name!r}: gateway tools are named SERVER__TOOL")
        call.server, call.tool = split
        size = len(orjson.dumps(call.arguments)) if call.arguments is not None else 0
        verdict = decide(self.cfg, call.agent, call.server, call.tool, call.grant)
        if self.guard is not None and (refusal := await self.guard(call.server)) is not None:
            await self._refuse(call, verdict, refusal.error_type)
            raise MCPError(refusal.code, refusal.message, refusal.data)
        if size > self.cfg.max_argument_bytes:
            await self._refuse(call, verdict, "arguments_too_large", payload={"arguments_bytes": size})
            raise MCPError(-32602, f"arguments of {size} bytes exceed the gateway's limit of "
                                   f"{self.cfg.max_argument_bytes} bytes (gateway.max_argument_bytes)")
        if verdict.decision == "deny":
            await self._refuse(call, verdict, verdict.reason)
            raise MCPError(errors.DENIED, f"{call.name} is refused by policy {self.cfg.policy_id} "
                                          f"({verdict.reason.replace('_', ' ')})")
        await self._check_pin(call, verdict)
        if verdict.tier in self.cfg.ledger.fail_closed and not self.recorder.ledger_up:
            await self._refuse(call, verdict, "ledger_unreachable")
            raise MCPError(errors.LEDGER_DOWN, f"{call.name} is refused while the ledger cannot be reached "
                                               f"({verdict.tier} tools fail closed)")
        if verdict.decision == "step_up":
            await self._step_up(call, verdict)
        await self._limits(call, verdict)
        return await self._forward(call, verdict)

    async def _check_pin(self, call: Call, verdict: Verdict) -> None:
        """Refuse a tool the upstream does not list, no longer lists, or redefined under ``block``.
        The upstream is listed first when this process has not pinned it since its last connection."""
        upstream = self.upstreams[call.server]
        if not upstream.connected or self._connects.get(call.server) != upstream.connects:
            try:
                await self.discovery.listed(call.server, await upstream.tools())
            except UpstreamTimeoutError as e:
                await self._record(call, verdict, "timeout", error_type="upstream_timeout",
                                   payload={"arguments": call.arguments})
                raise MCPError(errors.UPSTREAM_TIMEOUT, str(e)) from e
            except (UpstreamError, MCPError) as e:
                await self._record(call, verdict, "error", error_type="upstream_failed",
                                   payload={"arguments": call.arguments})
                raise MCPError(errors.UPSTREAM_FAILED, f"{call.name}: listing the tools of server {call.server} "
                                                       f"failed: {type(e).__name__}") from e
            self._connects[call.server] = upstream.connects
        pin = await self.discovery.pin(call.server, call.tool)
        why = await self._pin_refusal(call.server, call.tool)
        # in force: the definition that runs; for a refused one, the last approved (the new one is not in force)
        call.def_hash = None if pin is None else pin.approved_hash if why is not None else pin.def_hash
        if why is not None:
            await self._refuse(call, verdict, why)
            raise MCPError(errors.DENIED, f"{call.name} is refused: {_PIN_REASONS[why]}")
        call.flagged = pin is not None and pin.changed

    async def _step_up(self, call: Call, verdict: Verdict) -> None:
        self.metrics.held.inc()
        try:
            outcome = await hold(self.store, agent=call.agent, server=call.server, tool=call.tool,
                                 arguments=call.arguments, call_event_id=call.event_id, hold_s=self.cfg.hold_s,
                                 ttl_s=self.cfg.approval_ttl_s)
        finally:
            self.metrics.held.dec()
        a = outcome.approval
        if outcome.state == "granted":
            if not await self.store.consume_approval(a.approval_id):
                return await self._step_up(call, verdict)  # another call took this approval: ask again
            return None
        if outcome.state == "pending":
            if outcome.created:
                await self._record(call, verdict, "pending", error_type="approval_pending",
                                   payload={"arguments": call.arguments, "approval_id": a.approval_id})
            raise MCPError(errors.PENDING_APPROVAL,
                           f"pending approval {a.approval_id}: {call.name} waits for an approver; call it again "
                           "with the same arguments to pick up the decision",
                           {"approval_id": a.approval_id, "expires_at": a.expires_at})
        if outcome.state == "expired" and await self.store.consume_approval(a.approval_id, status="pending"):
            await self.recorder.record(events.approval(
                approval_id=a.approval_id, call_event_id=a.call_event_id, decision="refused", agent_id=call.agent,
                session_id=call.session, server_id=call.server, tool_name=call.tool, policy_id=self.cfg.policy_id,
                policy_version=self.version, wait_ms=int((time.time() - a.created_at) * 1000),
                payload={"approver": "gateway", "reason": "expired"}))
        elif outcome.state == "refused":
            await self.store.consume_approval(a.approval_id, status="refused")
        await self._refuse(call, verdict, "approval_" + outcome.state, payload={
            "arguments": call.arguments, "approval_id": a.approval_id})
        raise MCPError(errors.DENIED, f"{call.name} was not approved: approval {a.approval_id} {outcome.state}"
                       + (f" by {a.decided_by}" if outcome.state == "refused" and a.decided_by else ""),
                       {"approval_id": a.approval_id, "state": outcome.state})

    async def _limits(self, call: Call, verdict: Verdict) -> None:
        for limit in verdict.limits:
            ok, retry = await self.store.take(limit.bucket, limit.rate, time.time())
            if ok:
                continue
            self.metrics.rate_limited.labels(limit.scope).inc()
            await self.recorder.record(events.rate_limit(
                limit_id=limit.bucket, window_s=limit.rate.window_s, limit=limit.rate.capacity,
                observed=limit.rate.capacity + 1, scope=limit.scope, agent_id=call.agent, session_id=call.session,
                server_id=call.server, tool_name=call.tool))
            await self._refuse(call, verdict, "rate_limited")
            raise MCPError(errors.RATE_LIMITED, f"{call.name} is rate limited by the {limit.scope} limit "
                           f"{limit.bucket} ({limit.rate.text}); retry after {retry:.2f} s",
                           {"limit": limit.bucket, "scope": limit.scope, "rate": limit.rate.text,
                            "retry_after_s": round(retry, 3)})

    async def _forward(self, call: Call, verdict: Verdict) -> dict[str, Any]:
        upstream = self.upstreams[call.server]
        meta = _forwarded_meta(call.meta)
        try:
            result = await upstream.call(call.tool, call.arguments, meta, verdict.timeout_s, on_progress=call.progress)
        except UpstreamTimeoutError as e:
            await self._record(call, verdict, "timeout", error_type="upstream_timeout",
                               payload={"arguments": call.arguments})
            raise MCPError(errors.UPSTREAM_TIMEOUT, str(e)) from e
        except UpstreamError as e:
            await self._record(call, verdict, "error", error_type="upstream_failed",
                               payload={"arguments": call.arguments})
            raise MCPError(errors.UPSTREAM_FAILED, str(e)) from e
        except MCPError as e:
            await self._record(call, verdict, "error", error_type="upstream_error",
                               payload={"arguments": call.arguments, "error": {"code": e.code, "message": e.message}})
            raise
        except asyncio.CancelledError:  # the agent cancelled the request: the forwarded call is recorded too
            await self._record(call, verdict, "error", error_type="cancelled", payload={"arguments": call.arguments})
            raise
        status: events.CallStatus = "error" if result.get("isError") is True else "ok"
        await self._record(call, verdict, status, payload={"arguments": call.arguments, "result": result},
                           error_type="definition_changed" if call.flagged else None)
        return result

    async def _refuse(self, call: Call, verdict: Verdict, error_type: str,
                      payload: dict[str, Any] | None = None) -> None:
        await self._record(call, verdict, "denied", error_type=error_type,
                           payload=payload if payload is not None else {"arguments": call.arguments})

    async def _record(self, call: Call, verdict: Verdict, status: events.CallStatus, *, error_type: str | None = None,
                      payload: dict[str, Any]) -> None:
        latency = int((time.monotonic() - call.started) * 1000)
        trace_id, span_id = _trace(call.meta)
        decision = "deny" if status == "denied" and verdict.decision != "step_up" else verdict.decision
        forwarded = status in ("ok", "error", "timeout")
        cost = verdict.cost_micros if forwarded else None
        self.metrics.calls.labels(call.server, decision, status).inc()
        self.metrics.latency.labels(call.server).observe(time.monotonic() - call.started)
        event_id = None if call.recorded else call.event_id
        call.recorded = True
        if call.def_hash is None and call.tool:
            pinned = self.discovery.cached(call.server, call.tool)
            call.def_hash = None if pinned is None else pinned.def_hash
        await self.recorder.record(events.tool_call(
            event_id=event_id,
            agent_id=call.agent, server_id=call.server or "unknown", tool_name=call.tool or call.name[:256] or "-",
            decision=decision, status=status, session_id=call.session, tool_tier=verdict.tier,
            tool_def_hash=call.def_hash,
            policy_id=self.cfg.policy_id, policy_version=self.version, error_type=error_type, latency_ms=latency,
            cost_micros=cost, currency=self.cfg.currency if cost is not None else None, trace_id=trace_id,
            span_id=span_id, payload=payload,
            subjects=subjects_of(self.cfg, call.server, call.tool, call.arguments) or None))


def _forwarded_meta(meta: Any) -> dict[str, Any] | None:
    """The agent's ``_meta`` for the upstream, without the protocol's reserved keys: the 2026-07-28
    envelope (``io.modelcontextprotocol/...``) belongs to the agent's connection, not the upstream's."""
    if not isinstance(meta, dict):
        return None
    # progressToken is the agent's; the upstream gets one of the gateway's connection (see Call.progress)
    kept = {k: v for k, v in meta.items() if not k.startswith("io.modelcontextprotocol/") and k != "progressToken"}
    return kept or None


_PIN_REASONS: dict[pinning.Refusal, str] = {
    "unlisted_tool": "the server does not list this tool",
    "removed_tool": "the server no longer lists this tool",
    "definition_changed": "its definition changed since it was approved; an operator must approve it again "
                          "(sealtrail gateway tools approve SERVER/TOOL)",
}


def _trace(meta: Any) -> tuple[str | None, str | None]:
    """Trace and parent span ids from ``params._meta.traceparent`` (W3C), when valid."""
    parent = meta.get("traceparent") if isinstance(meta, dict) else None
    if not isinstance(parent, str):
        return None, None
    parts = parent.split("-")
    if len(parts) != 4 or len(parts[1]) != 32 or len(parts[2]) != 16:
        return None, None
    trace, span = parts[1], parts[2]
    ok = all(c in "0123456789abcdef" for c in trace + span) and trace != "0" * 32 and span != "0" * 16
    return (trace, span) if ok else (None, None)
