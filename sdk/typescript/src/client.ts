/**
 * The gateway's client: batching, retries with the same event ids, backoff that honours
 * Retry-After, and an optional write-ahead spool on disk.
 *
 * Delivery contract:
 *
 * - Events are sent to ingest's `POST /v1/events` in batches of up to `batchMax`, at least every
 *   `flushIntervalMs`.
 * - A batch that meets 401, 403, 408, 425, 429, 5xx, a timeout or a connection error is retried
 *   with the SAME events (so the same event ids) after {@link Backoff} delays that are never
 *   shorter than the server's Retry-After. Ingest accepts a resent event again and the ledger
 *   keeps it once. 413 splits the batch. 400 and 422 are final: the events are reported through
 *   `onRejected`.
 * - With `spoolDir`, the spool is write-ahead: `send()` resolves once the event is fsync'd in the
 *   spool (sends made together share one fsync), and events are delivered from the spool, oldest
 *   first, and acknowledged there after ingest's 202. A crash at any moment loses no event whose
 *   `send()` resolved; a batch delivered but not yet acknowledged goes out again after a restart
 *   with the same event ids, so the log holds it once. What cannot be delivered stays spooled and
 *   is retried with growing delays; `close()` leaves it for the next start.
 * - Without a spool, events are queued in memory (`send()` waits while `queueMax` are queued);
 *   `close()` flushes, and events it cannot deliver throw {@link DeliveryError}, naming the last
 *   answer (HTTP status, problem title and detail, or the connection error).
 * - 401 and 403 are retried like outages (a key being fixed must not lose events), and each batch
 *   that runs out of tries on one is reported through `onWarning`, so a wrong key shows at once.
 * - No message, warning or error of this module holds the token.
 */

import { Backoff } from "./backoff.ts";
import { DeliveryError, InvalidInputError } from "./errors.ts";
import type { GatewayEvent } from "./events.ts";
import { Spool, type SpooledBatch } from "./spool.ts";
import { Failure, postBatch, type Accepted, type Answer, type Rejected } from "./transport.ts";

export type { Accepted, Rejected } from "./transport.ts";
export { Failure } from "./transport.ts";

export const DEFAULT_BATCH_MAX = 500;
export const DEFAULT_FLUSH_INTERVAL_MS = 1000;
export const DEFAULT_SPOOL_MAX_BYTES = 256 * 1024 * 1024;
export const DEFAULT_ATTEMPTS = 4;
export const DEFAULT_TIMEOUT_MS = 15000;

type Event = GatewayEvent | Record<string, unknown>;

export interface ClientOptions {
  batchMax?: number;
  flushIntervalMs?: number;
  /** A directory for the write-ahead spool (one client at a time). */
  spoolDir?: string;
  spoolMaxBytes?: number;
  /** Events queued in memory before `send()` waits (no spool); default 20 batches. */
  queueMax?: number;
  /** Tries per batch before it waits for the next round (spool) or is kept queued (memory). */
  attempts?: number;
  backoff?: Backoff;
  timeoutMs?: number;
  onAccepted?: (accepted: Accepted[]) => void;
  onRejected?: (rejected: Rejected[]) => void;
  /** Told when a batch ran out of tries on a refused key (401/403); never holds the token. */
  onWarning?: (message: string) => void;
  /** The fetch to use (default: the global one). */
  fetch?: typeof fetch;
}

export interface ClientStats {
  accepted: number;
  rejected: number;
  retries: number;
  lastStatus: number | null;
  /** The last failed answer, as {@link Failure} words it (null until a try fails). */
  lastProblem: string | null;
}

/** Refuse, alone, an event that has no JSON form (a BigInt, a cycle), before it can hold up a batch. */
function checkSendable(event: Event): void {
  try {
    JSON.stringify(event);
  } catch (e) {
    const id = typeof (event as { event_id?: unknown }).event_id === "string" ? ` ${(event as { event_id: string }).event_id}` : "";
    throw new InvalidInputError(`event${id} has no JSON form: ${(e as Error).name}`);
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Sends events to ingest on behalf of one gateway API key. */
export class SealtrailClient {
  readonly stats: ClientStats = { accepted: 0, rejected: 0, retries: 0, lastStatus: null, lastProblem: null };
  private readonly url: string;
  private readonly batchMax: number;
  private readonly intervalMs: number;
  private readonly queueMax: number;
  private readonly attempts: number;
  private readonly backoff: Backoff;
  private readonly spool: Spool | null;
  private readonly queue: Event[] = [];
  private readonly staged: { events: Event[]; done: Promise<void> } = { events: [], done: Promise.resolve() };
  private stagedWaiters: { resolve: () => void; reject: (e: unknown) => void }[] = [];
  private spaceWaiters: (() => void)[] = [];
  private pumping: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout | null = null;
  private outages = 0;
  private nextSpoolTry = 0;
  private lastFailure: Failure | null = null;
  private lastRetryAfter: number | null = null;
  private closed = false;
  readonly #token: string;
  readonly #options: ClientOptions;

  constructor(url: string, token: string, options: ClientOptions = {}) {
    this.url = url.replace(/\/+$/, "");
    this.#token = token;
    this.#options = options;
    this.batchMax = options.batchMax ?? DEFAULT_BATCH_MAX;
    this.intervalMs = options.flushIntervalMs ?? DEFAULT_FLUSH_INTERVAL_MS;
    this.queueMax = options.queueMax ?? 20 * this.batchMax;
    this.attempts = Math.max(1, options.attempts ?? DEFAULT_ATTEMPTS);
    this.backoff = options.backoff ?? new Backoff();
    this.spool = options.spoolDir === undefined ? null
      : new Spool(options.spoolDir, { maxBytes: options.spoolMaxBytes ?? DEFAULT_SPOOL_MAX_BYTES });
  }

  /** The token stays out of inspection and logs. */
  toString(): string {
    return `SealtrailClient(${this.url})`;
  }

  [Symbol.for("nodejs.util.inspect.custom")](): string {
    return this.toString();
  }

  /** Start the background flusher (`send()` starts it too). */
  start(): void {
    if (this.timer === null && !this.closed) {
      this.timer = setInterval(() => void this.pump(false).catch(() => undefined), this.intervalMs);
    }
  }

  /** Events queued in memory, not counting the spool. */
  get pending(): number {
    return this.queue.length;
  }

  /** Whether the spool holds events not yet delivered. */
  get spooled(): boolean {
    return this.spool?.pending ?? false;
  }

  /**
   * Queue one event. With a spool, resolves once the event is durable on disk (and rejects with
   * {@link SpoolFullError} when the spool is full); without one, waits while `queueMax` events are
   * queued.
   */
  async send(event: Event): Promise<void> {
    if (this.closed) throw new DeliveryError("the client is closed");
    checkSendable(event);
    this.start();
    if (this.spool !== null) return this.stage(event);
    while (this.queue.length >= this.queueMax) {
      void this.pump(false).catch(() => undefined);
      await new Promise<void>((resolve) => this.spaceWaiters.push(resolve));
    }
    this.queue.push(event);
    if (this.queue.length >= this.batchMax) void this.pump(false).catch(() => undefined);
  }

  /** Deliver everything queued or spooled now (the spool is tried regardless of backoff). */
  async flush(): Promise<void> {
    await this.staged.done;
    await this.pump(true);
  }

  /** Flush, stop the flusher and release the spool. */
  async close(): Promise<void> {
    if (this.closed) return;
    try {
      await this.flush();
    } finally {
      this.closed = true;
      if (this.timer !== null) clearInterval(this.timer);
      this.timer = null;
      await this.pumping;
      this.spool?.close();
    }
    if (this.queue.length) {
      const failure = this.lastFailure;
      const message = `${this.queue.length} events were not delivered`;
      if (failure === null) throw new DeliveryError(message);
      throw new DeliveryError(`${message}; last answer: ${failure.toString()}`, failure);
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  // --- write-ahead staging: one fsync for all events sent in the same turn -------------------

  private stage(event: Event): Promise<void> {
    this.staged.events.push(event);
    const done = new Promise<void>((resolve, reject) => this.stagedWaiters.push({ resolve, reject }));
    if (this.staged.events.length === 1) this.staged.done = new Promise((resolve) => setImmediate(() => resolve(this.commitStaged())));
    return done;
  }

  private commitStaged(): void {
    const events = this.staged.events.splice(0);
    const waiters = this.stagedWaiters;
    this.stagedWaiters = [];
    try {
      for (let i = 0; i < events.length; i += this.batchMax) this.spool!.append(events.slice(i, i + this.batchMax) as Record<string, unknown>[]);
    } catch (e) {
      for (const w of waiters) w.reject(e);
      return;
    }
    for (const w of waiters) w.resolve();
    void this.pump(false).catch(() => undefined);
  }

  // --- delivery -------------------------------------------------------------------------------

  private pump(force: boolean): Promise<void> {
    const run = this.pumping.then(() => (this.spool !== null ? this.drainSpool(force) : this.drainQueue()));
    this.pumping = run.catch(() => undefined);
    return run;
  }

  private async drainQueue(): Promise<void> {
    while (this.queue.length) {
      const batch = this.queue.splice(0, this.batchMax);
      for (const wake of this.spaceWaiters.splice(0)) wake();
      const rest = await this.deliver(batch, this.attempts);
      if (rest.length) {
        this.queue.unshift(...rest);
        return;
      }
    }
  }

  private async drainSpool(force: boolean): Promise<void> {
    if (!force && Date.now() < this.nextSpoolTry) return;
    let batch: SpooledBatch | null;
    while (!this.closed && (batch = this.spool!.peek(this.batchMax)) !== null) {
      const rest = await this.deliver(batch.events, force ? 1 : this.attempts);
      if (rest.length) {
        this.nextSpoolTry = Date.now() + 1000 * this.backoff.delay(this.outages, this.lastRetryAfter);
        this.outages += 1;
        return;
      }
      this.spool!.ack(batch);
    }
    this.outages = 0;
  }

  /** Send `batch`; return the events still undelivered after `attempts` tries. */
  private async deliver(batch: Event[], attempts: number): Promise<Event[]> {
    this.lastRetryAfter = null;
    for (let attempt = 0; attempt < attempts; attempt++) {
      const answer = await this.post(batch);
      if (answer.split && batch.length > 1) {
        const half = Math.floor(batch.length / 2);
        const first = await this.deliver(batch.slice(0, half), attempts);
        return [...first, ...(await this.deliver(batch.slice(half), attempts))];
      }
      if (answer.done) return [];
      this.lastRetryAfter = answer.retryAfter;
      if (attempt + 1 < attempts) {
        this.stats.retries += 1;
        await sleep(1000 * this.backoff.delay(attempt, answer.retryAfter));
      }
    }
    const failure = this.lastFailure;
    if (failure !== null && failure.keyRefused && this.#options.onWarning) {
      this.#options.onWarning(`${batch.length} events not delivered after ${attempts} tries: ${failure.toString()}; `
        + `they are ${this.spool ? "spooled" : "kept in memory"} and retried`);
    }
    return batch;
  }

  private async post(batch: Event[]): Promise<Answer> {
    const answer = await postBatch({
      url: `${this.url}/v1/events`, token: this.#token, events: batch,
      timeoutMs: this.#options.timeoutMs ?? DEFAULT_TIMEOUT_MS, fetch: this.#options.fetch ?? fetch,
    });
    if (answer.failure !== null) {
      this.lastFailure = answer.failure;
      this.stats.lastProblem = answer.failure.toString();
    }
    this.stats.lastStatus = answer.status;
    this.report(answer.accepted, answer.rejected);
    return answer;
  }

  private report(accepted: Accepted[], rejected: Rejected[]): void {
    this.stats.accepted += accepted.length;
    this.stats.rejected += rejected.length;
    if (accepted.length) this.#options.onAccepted?.(accepted);
    if (rejected.length) this.#options.onRejected?.(rejected);
  }
}
