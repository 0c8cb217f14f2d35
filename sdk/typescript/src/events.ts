/**
 * Typed builders for the v1 gateway events: UUIDv7 ids, RFC 3339 UTC timestamps, no nulls.
 *
 * Field names are the wire names of `schemas/<type>.v1.schema.json`. Each builder returns the
 * event ready for {@link SealtrailClient.send}. Optional fields left undefined (or null) are
 * omitted (the schemas refuse explicit nulls). `payload` holds everything personal or sensitive and
 * is sealed by ingest; `subjects` names the data subjects it concerns (e.g.
 * `"user:alice@example.com"`) and never enters the log header. `access`, `erasure` and
 * `retention` events are written by Sealtrail itself (ingest refuses them from gateways), so they
 * have types here but no builders.
 */

import { randomBytes } from "node:crypto";

import { InvalidInputError } from "./errors.ts";

export type ToolTier = "read" | "write" | "destructive" | "unknown";
export type Decision = "allow" | "deny" | "step_up" | "observe";
export type CallStatus = "ok" | "error" | "denied" | "pending" | "timeout";
export type Payload = Record<string, unknown>;

/** Fields every builder accepts. */
export interface Common {
  /** The idempotency key: a lowercase UUIDv7 (one is made when absent). Resends reuse it. */
  event_id?: string;
  /** When it happened (now when absent); a string is sent as it is. */
  occurred_at?: Date | string;
  payload?: Payload;
  subjects?: readonly string[];
}

interface Header {
  event_id: string;
  type: string;
  occurred_at: string;
  schema?: string;
  payload?: Payload;
  subjects?: string[];
}

export interface ToolCallFields extends Common {
  agent_id: string;
  server_id: string;
  tool_name: string;
  decision: Decision;
  status: CallStatus;
  session_id?: string;
  tool_tier?: ToolTier;
  tool_def_hash?: string;
  policy_id?: string;
  policy_version?: string;
  error_type?: string;
  latency_ms?: number;
  cost_micros?: number;
  currency?: string;
  trace_id?: string;
  span_id?: string;
}

export interface ApprovalFields extends Common {
  approval_id: string;
  call_event_id: string;
  decision: "granted" | "refused";
  agent_id?: string;
  session_id?: string;
  server_id?: string;
  tool_name?: string;
  policy_id?: string;
  policy_version?: string;
  wait_ms?: number;
  trace_id?: string;
  span_id?: string;
}

export interface RateLimitFields extends Common {
  limit_id: string;
  window_s: number;
  limit: number;
  observed: number;
  scope?: "tenant" | "agent" | "session" | "server" | "tool";
  agent_id?: string;
  session_id?: string;
  server_id?: string;
  tool_name?: string;
}

export interface HealthCheckFields extends Common {
  server_id: string;
  status: "healthy" | "degraded" | "unhealthy";
  latency_ms?: number;
  error_type?: string;
}

export interface ToolListFields extends Omit<Common, never> {
  server_id: string;
  /** `[name, "sha256:<hex>"]` pairs, as the Python SDK takes them, or `{name, def_hash}` objects. */
  tools: readonly (readonly [string, string] | { name: string; def_hash: string })[];
  agent_id?: string;
  session_id?: string;
}

export interface ServerStatusFields extends Common {
  server_id: string;
  state: "active" | "inactive";
}

export interface CredentialRotationFields extends Common {
  server_id: string;
  /** A label, never the secret. */
  credential_id: string;
  reason?: "scheduled" | "suspected_compromise" | "manual";
  expires_at?: Date | string;
}

type Wire<F, K extends string> = Header & { type: K } & Omit<F, keyof Common | "tools" | "expires_at">;
export type ToolCallEvent = Wire<ToolCallFields, "tool_call">;
export type ApprovalEvent = Wire<ApprovalFields, "approval">;
export type RateLimitEvent = Wire<RateLimitFields, "rate_limit">;
export type HealthCheckEvent = Wire<HealthCheckFields, "health_check">;
export type ToolListEvent = Wire<ToolListFields, "tool_list"> & { tools: { name: string; def_hash: string }[] };
export type ServerStatusEvent = Wire<ServerStatusFields, "server_status">;
export type CredentialRotationEvent = Wire<CredentialRotationFields, "credential_rotation"> & { expires_at?: string };

/** Written by Sealtrail: a payload was revealed or exported. */
export interface AccessEvent extends Header {
  type: "access"; accessor_key_id: string; purpose_code: string; target_event_id: string;
  action: "reveal" | "export"; export_ref?: string;
}
/** Written by Sealtrail: a subject was erased. */
export interface ErasureEvent extends Header {
  type: "erasure"; request_ref: string; legal_basis: string; erased_key_ids: string[];
  payloads_deleted: number; index_rows_deleted: number; caches_clear_by?: string;
}
/** Written by Sealtrail: the period key of a UTC month expired. */
export interface RetentionEvent extends Header {
  type: "retention"; period: string; period_key_id: string; payloads_deleted: number;
}

/** Any event a gateway may send. */
export type GatewayEvent = ToolCallEvent | ApprovalEvent | RateLimitEvent | HealthCheckEvent | ToolListEvent
  | ServerStatusEvent | CredentialRotationEvent;
/** Any v1 event, those Sealtrail writes included. */
export type SealtrailEvent = GatewayEvent | AccessEvent | ErasureEvent | RetentionEvent;

/** A UUIDv7 (RFC 9562) in lowercase 8-4-4-4-12 form: 48-bit Unix ms, then 74 random bits. */
export function uuid7(ms: number = Date.now()): string {
  const bytes = randomBytes(16);
  let stamp = BigInt(Math.floor(ms)) & ((1n << 48n) - 1n);
  for (let i = 5; i >= 0; i--) {
    bytes[i] = Number(stamp & 0xffn);
    stamp >>= 8n;
  }
  bytes[6] = 0x70 | (bytes[6]! & 0x0f);
  bytes[8] = 0x80 | (bytes[8]! & 0x3f);
  const hex = bytes.toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** RFC 3339 UTC with milliseconds and `Z` (now when `moment` is absent). */
export function timestamp(moment: Date = new Date()): string {
  if (Number.isNaN(moment.getTime())) throw new InvalidInputError("timestamp: invalid Date");
  return moment.toISOString();
}

function when(value: Date | string | undefined): string {
  return typeof value === "string" ? value : timestamp(value);
}

function build<E>(type: string, fields: object): E {
  const { event_id, occurred_at, subjects, ...rest } = fields as Common & Record<string, unknown>;
  const event: Record<string, unknown> = { event_id: event_id ?? uuid7(), type, occurred_at: when(occurred_at) };
  for (const [key, value] of Object.entries(rest)) {
    if (value !== undefined && value !== null) event[key] = value;
  }
  if (subjects !== undefined && subjects !== null) event.subjects = [...subjects];
  return event as E;
}

/** One tool call (denied and step-up-held calls included). */
export function toolCall(fields: ToolCallFields): ToolCallEvent {
  return build("tool_call", fields);
}

/** A step-up request granted or refused; the approver's identity belongs in `payload`. */
export function approval(fields: ApprovalFields): ApprovalEvent {
  return build("approval", fields);
}

/** A rate limit was reached. */
export function rateLimit(fields: RateLimitFields): RateLimitEvent {
  return build("rate_limit", fields);
}

/** The result of probing one tool server. */
export function healthCheck(fields: HealthCheckFields): HealthCheckEvent {
  return build("health_check", fields);
}

/** A capability snapshot: each tool's name and `sha256:<hex>` definition hash ({@link toolDefHash}). */
export function toolList(fields: ToolListFields): ToolListEvent {
  const tools = fields.tools.map((t) => (Array.isArray(t) ? { name: t[0] as string, def_hash: t[1] as string } : { ...(t as { name: string; def_hash: string }) }));
  return build("tool_list", { ...fields, tools });
}

/** A tool server became active or inactive (any free-text reason goes in `payload`). */
export function serverStatus(fields: ServerStatusFields): ServerStatusEvent {
  return build("server_status", fields);
}

/** A server credential was rotated; `credential_id` is a label, never the secret. */
export function credentialRotation(fields: CredentialRotationFields): CredentialRotationEvent {
  const { expires_at, ...rest } = fields;
  return build("credential_rotation", { ...rest, expires_at: expires_at === undefined ? undefined : when(expires_at) });
}
