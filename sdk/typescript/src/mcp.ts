/**
 * Records every MCP `tools/call` as a Sealtrail `tool_call` event, for servers and clients built on
 * `@modelcontextprotocol/sdk` (or anything that speaks JSON-RPC through its `Transport` shape).
 *
 * The integration taps the transport: it watches the messages that cross it and changes none of
 * them, so the server or client behaves exactly as before (a failure to record is reported through
 * `onError` and never reaches the MCP peer). A request `tools/call` and its answer make one event:
 * the tool name, the arguments and the result (or the JSON-RPC error) as the sealed payload, the
 * status (`ok`, or `error` for a JSON-RPC error or a result with `isError`), the latency from
 * request to answer (milliseconds, to the microsecond), the MCP session id, and the tool's
 * definition hash and tier when a `tools/list` answer crossed the same transport. The agent and
 * server ids come from the options, else from the `initialize` handshake (`clientInfo.name`,
 * `serverInfo.name`).
 *
 * This module imports nothing of the MCP SDK at run time.
 */

import { performance } from "node:perf_hooks";

import { toolDefHash } from "./canonical.ts";
import type { SealtrailClient } from "./client.ts";
import { toolCall, type CallStatus, type Decision, type ToolTier } from "./events.ts";

type Json = Record<string, unknown>;

/** The part of an MCP `Transport` the integration uses. */
export interface TransportLike {
  send(message: any, options?: any): Promise<void>;
  onmessage?: ((message: any, extra?: any) => void) | undefined;
  onclose?: (() => void) | undefined;
  sessionId?: string | undefined;
}

/** An MCP `Server`, `Client` or `Protocol`: something that connects to transports. */
export interface ConnectableLike {
  connect(transport: any, ...rest: any[]): Promise<void>;
  readonly transport?: TransportLike | undefined;
}

/** What the subjects callback sees of one call. */
export interface CallFacts {
  toolName: string;
  arguments: unknown;
  result: unknown;
  error: unknown;
}

export interface RecordOptions {
  /** Where the events go; the caller owns it (and closes it). */
  client: SealtrailClient;
  /** The agent, else the peer's `clientInfo.name`, else `mcp-client`. */
  agentId?: string;
  /** The tool server, else `serverInfo.name`, else `mcp-server`. */
  serverId?: string;
  /** The session, else the transport's MCP session id. */
  sessionId?: string;
  /** The decision written into each event (default `observe`: the call was recorded, not gated). */
  decision?: Decision;
  /** The data subjects of a call's payload (e.g. `user:alice@example.com`), if any. */
  subjects?: (call: CallFacts) => string[] | undefined;
  /** Told when a call could not be recorded; the MCP exchange goes on regardless. */
  onError?: (error: unknown) => void;
}

interface Pending {
  name: string;
  arguments: unknown;
  startedAt: Date;
  start: number;
}

interface ToolFacts {
  defHash: string;
  tier: ToolTier;
}

const isObject = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);
const idKey = (id: unknown): string => `${typeof id}:${String(id)}`;

function tierOf(tool: Json): ToolTier {
  const a = isObject(tool.annotations) ? tool.annotations : {};
  if (a.readOnlyHint === true) return "read";
  if (a.destructiveHint === true) return "destructive";
  if (a.destructiveHint === false) return "write";
  return "unknown";
}

/** One tapped transport: its handshake facts, its tool list and its calls in flight. */
class Tap {
  private readonly pending = new Map<string, Pending>();
  private readonly tools = new Map<string, ToolFacts>();
  private readonly initializing = new Set<string>();
  private agent: string | undefined;
  private server: string | undefined;

  constructor(private readonly transport: TransportLike, private readonly options: RecordOptions, private readonly side: "server" | "client") {}

  /** A message the local side received (a JSON-RPC batch is read message by message). */
  incoming(message: unknown): void {
    for (const m of Array.isArray(message) ? message : [message]) {
      this.safely(() => (this.side === "server" ? this.request(m) : this.response(m)));
    }
  }

  /** A message the local side sends. */
  outgoing(message: unknown): void {
    for (const m of Array.isArray(message) ? message : [message]) {
      this.safely(() => (this.side === "server" ? this.response(m) : this.request(m)));
    }
  }

  /** The transport closed: calls still waiting for an answer are recorded without one. */
  closed(): void {
    for (const [key, call] of this.pending) {
      this.pending.delete(key);
      this.safely(() => this.record(call, "error", "no_response", { arguments: call.arguments }));
    }
  }

  private request(message: unknown): void {
    if (!isObject(message) || message.id === undefined) return;
    const params = isObject(message.params) ? message.params : {};
    if (message.method === "initialize") {
      this.initializing.add(idKey(message.id));
      const info = isObject(params.clientInfo) ? params.clientInfo : {};
      if (typeof info.name === "string") this.agent = info.name;
    } else if (message.method === "tools/list") {
      this.initializing.add(`list:${idKey(message.id)}`);
    } else if (message.method === "tools/call" && typeof params.name === "string") {
      this.pending.set(idKey(message.id), { name: params.name, arguments: params.arguments ?? {}, startedAt: new Date(), start: performance.now() });
    }
  }

  private response(message: unknown): void {
    if (!isObject(message) || message.id === undefined || (!("result" in message) && !("error" in message))) return;
    const key = idKey(message.id);
    if (this.initializing.delete(key)) {
      const info = isObject(message.result) && isObject(message.result.serverInfo) ? message.result.serverInfo : {};
      if (typeof info.name === "string") this.server = info.name;
      return;
    }
    if (this.initializing.delete(`list:${key}`)) {
      this.learnTools(message.result);
      return;
    }
    const call = this.pending.get(key);
    if (call === undefined) return;
    this.pending.delete(key);
    if ("error" in message) {
      const error = isObject(message.error) ? message.error : { message: String(message.error) };
      this.record(call, "error", `jsonrpc_${String(error.code ?? "error")}`, { arguments: call.arguments, error });
    } else {
      const result = message.result;
      const failed = isObject(result) && result.isError === true;
      this.record(call, failed ? "error" : "ok", failed ? "tool_error" : undefined, { arguments: call.arguments, result });
    }
  }

  private learnTools(result: unknown): void {
    if (!isObject(result) || !Array.isArray(result.tools)) return;
    for (const tool of result.tools) {
      if (isObject(tool) && typeof tool.name === "string") this.tools.set(tool.name, { defHash: toolDefHash(tool), tier: tierOf(tool) });
    }
  }

  private record(call: Pending, status: CallStatus, errorType: string | undefined, payload: Json): void {
    const o = this.options;
    const tool = this.tools.get(call.name);
    const subjects = o.subjects?.({ toolName: call.name, arguments: call.arguments, result: payload.result, error: payload.error });
    const event = toolCall({
      agent_id: o.agentId ?? this.agent ?? "mcp-client", server_id: o.serverId ?? this.server ?? "mcp-server",
      session_id: o.sessionId ?? this.transport.sessionId, tool_name: call.name, decision: o.decision ?? "observe",
      status, error_type: errorType, latency_ms: Math.max(0, Math.round((performance.now() - call.start) * 1000) / 1000),
      tool_def_hash: tool?.defHash, tool_tier: tool?.tier, payload, subjects: subjects?.length ? subjects : undefined,
      occurred_at: call.startedAt,
    });
    o.client.send(event).catch((e: unknown) => o.onError?.(e));
  }

  private safely(fn: () => void): void {
    try {
      fn();
    } catch (e) {
      this.options.onError?.(e);
    }
  }
}

const TAPPED = Symbol("sealtrail.tapped");

/**
 * Tap one transport (before or after it is connected) so that the `tools/call` exchanges crossing
 * it are recorded. `side` says which end the local code is: `server` (requests come in) or `client`.
 */
export function recordTransport<T extends TransportLike>(transport: T, options: RecordOptions, side: "server" | "client"): T {
  const marked = transport as T & { [TAPPED]?: boolean };
  if (marked[TAPPED]) return transport;
  marked[TAPPED] = true;
  const tap = new Tap(transport, options, side);
  const send = transport.send.bind(transport);
  transport.send = (message: unknown, sendOptions?: unknown) => {
    tap.outgoing(message);
    return send(message, sendOptions);
  };
  // Plain assignments: the MCP SDK's Protocol.connect() keeps a handler already set and calls it
  // first, and one set after connect() wraps the Protocol's; either way the tap sees each message once.
  const onmessage = transport.onmessage;
  transport.onmessage = (message: unknown, extra?: unknown) => {
    tap.incoming(message);
    onmessage?.(message, extra);
  };
  const onclose = transport.onclose;
  transport.onclose = () => {
    tap.closed();
    onclose?.();
  };
  return transport;
}

function tapConnect(target: ConnectableLike, options: RecordOptions, side: "server" | "client"): void {
  if (target.transport) recordTransport(target.transport, options, side);
  const connect = target.connect.bind(target);
  target.connect = (transport: TransportLike, ...rest: unknown[]) => connect(recordTransport(transport, options, side), ...rest);
}

/**
 * Record every `tools/call` an MCP server answers: an `McpServer` or a low-level `Server`, before
 * or after `connect()` (each transport it connects to later is tapped too). Returns the server.
 */
export function recordServer<S extends ConnectableLike | { server: ConnectableLike }>(server: S, options: RecordOptions): S {
  const low = "server" in server && isObject(server.server) ? (server.server as ConnectableLike) : (server as ConnectableLike);
  tapConnect(low, options, "server");
  return server;
}

/** Record every `tools/call` an MCP `Client` makes, before or after `connect()`. Returns the client. */
export function recordClient<C extends ConnectableLike>(mcpClient: C, options: RecordOptions): C {
  tapConnect(mcpClient, options, "client");
  return mcpClient;
}
