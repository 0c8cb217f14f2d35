/** One `POST /v1/events` and what its answer means for delivery. Tokens never leave this module. */

import { parseRetryAfter } from "./backoff.ts";

const RETRYABLE = new Set([401, 403, 408, 425, 429, 500, 502, 503, 504]);
const KEY_REFUSED = new Set([401, 403]);
const TOKEN = /\bst_([0-9a-f]{16})_[A-Za-z0-9_-]+/g;

/** Replace every API token in `text` by its public key id prefix. */
export function redact(text: string): string {
  return text.replace(TOKEN, "st_$1_…");
}

/** An event ingest accepted, with its signed receipt (see {@link verifyReceipt}). */
export interface Accepted {
  event_id: string;
  log: string;
  receipt: string;
}

/** An event ingest refused, with the RFC 9457 problem that says why and where. */
export interface Rejected {
  event_id: string | null;
  type: string;
  title: string;
  detail: string;
  pointer: string;
}

/** Why the last try of a batch failed: an HTTP answer, or a connection error (`status` null). */
export class Failure {
  constructor(readonly status: number | null, readonly title: string, readonly detail = "") {}

  get keyRefused(): boolean {
    return this.status !== null && KEY_REFUSED.has(this.status);
  }

  toString(): string {
    let text = this.status === null ? this.title : `HTTP ${this.status} ${this.title}`;
    if (this.detail) text += `: ${this.detail}`;
    if (this.keyRefused) text += " (ingest refused the API key: it is wrong, revoked, expired or not a gateway key)";
    return text;
  }
}

export interface Answer {
  done: boolean;
  split: boolean;
  retryAfter: number | null;
  status: number | null;
  failure: Failure | null;
  accepted: Accepted[];
  rejected: Rejected[];
}

export interface PostRequest {
  url: string;
  token: string;
  events: unknown[];
  timeoutMs: number;
  fetch: typeof fetch;
}

function answer(fields: Partial<Answer>): Answer {
  return { done: false, split: false, retryAfter: null, status: null, failure: null, accepted: [], rejected: [], ...fields };
}

function connectionError(e: unknown): string {
  const err = e as { name?: string; message?: string; cause?: { code?: string; message?: string } };
  if (err.name === "TimeoutError" || err.name === "AbortError") return "timed out";
  const code = err.cause?.code ?? err.cause?.message ?? err.message ?? "error";
  return `connection failed (${redact(String(code))})`;
}

const DROPPED = new Set(["UND_ERR_SOCKET", "ECONNRESET", "EPIPE"]);

function droppedConnection(e: unknown): boolean {
  const code = (e as { cause?: { code?: unknown } }).cause?.code;
  return typeof code === "string" && DROPPED.has(code);
}

async function readProblem(resp: Response): Promise<Record<string, unknown>> {
  if (!(resp.headers.get("content-type") ?? "").endsWith("json")) {
    await resp.body?.cancel();
    return {};
  }
  try {
    const body: unknown = await resp.json();
    return body !== null && typeof body === "object" && !Array.isArray(body) ? (body as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

const text = (value: unknown, fallback = ""): string => (typeof value === "string" ? value : value == null ? fallback : String(value));

/** Post one batch and classify the answer; never throws for network or HTTP failures. */
export async function postBatch(req: PostRequest): Promise<Answer> {
  let resp: Response | null = null;
  const body = JSON.stringify({ events: req.events });
  for (let tries = 1; resp === null; tries++) {
    try {
      resp = await req.fetch(req.url, {
        method: "POST", body, signal: AbortSignal.timeout(req.timeoutMs),
        headers: { authorization: `Bearer ${req.token}`, "content-type": "application/json" },
      });
    } catch (e) {
      // A kept-alive connection the server closed while idle fails on reuse: one fresh try at once
      // (the same events, so the same ids), which costs no backoff and no attempt.
      if (tries === 1 && droppedConnection(e)) continue;
      return answer({ failure: new Failure(null, connectionError(e)) });
    }
  }
  const status = resp.status;
  if (status === 202 || status === 422) {
    const body = await readProblem(resp);
    const accepted = Array.isArray(body.accepted) ? (body.accepted as Accepted[]) : [];
    const rejected = Array.isArray(body.rejected) ? (body.rejected as Rejected[]).map((r) => ({
      event_id: r.event_id ?? null, type: text(r.type), title: text(r.title), detail: text(r.detail), pointer: text(r.pointer),
    })) : [];
    return answer({ done: true, status, accepted, rejected });
  }
  if (status === 413) {
    await resp.body?.cancel();
    return answer({ done: req.events.length <= 1, split: true, status,
      rejected: req.events.length <= 1 ? rejectAll(req.events, { title: "Payload Too Large", type: "about:blank" }) : [] });
  }
  const problem = await readProblem(resp);
  if (RETRYABLE.has(status)) {
    const failure = new Failure(status, redact(text(problem.title, resp.statusText)), redact(text(problem.detail)));
    return answer({ status, failure, retryAfter: parseRetryAfter(resp.headers.get("retry-after")) });
  }
  return answer({ done: true, status, rejected: rejectAll(req.events, problem) });
}

function rejectAll(events: unknown[], problem: Record<string, unknown>): Rejected[] {
  return events.map((e) => ({
    event_id: text((e as { event_id?: unknown }).event_id) || null,
    type: text(problem.type, "about:blank"), title: redact(text(problem.title, "Rejected")),
    detail: redact(text(problem.detail)), pointer: text(problem.pointer),
  }));
}
