/** Retry delays: exponential with jitter, bounded, never sooner than the server's Retry-After. */

/** A Retry-After longer than this is capped (a broken proxy must not stall a gateway for hours). */
export const MAX_RETRY_AFTER_S = 300;

export interface BackoffOptions {
  baseS?: number;
  factor?: number;
  capS?: number;
  jitter?: number;
}

/**
 * `delay(n)` for the n-th retry (0-based): `min(cap, base * factor**n)` scaled by a random factor
 * in `[1 - jitter, 1]`, and at least the server's Retry-After (capped at {@link MAX_RETRY_AFTER_S}).
 */
export class Backoff {
  readonly baseS: number;
  readonly factor: number;
  readonly capS: number;
  readonly jitter: number;

  constructor(options: BackoffOptions = {}) {
    this.baseS = options.baseS ?? 0.2;
    this.factor = options.factor ?? 2;
    this.capS = options.capS ?? 30;
    this.jitter = options.jitter ?? 0.5;
  }

  /** Seconds to wait before retry `attempt`. */
  delay(attempt: number, retryAfter: number | null = null, rand: () => number = Math.random): number {
    const exponential = Math.min(this.capS, this.baseS * this.factor ** Math.max(0, attempt));
    const jittered = exponential * (1 - this.jitter * rand());
    if (retryAfter === null) return jittered;
    return Math.max(jittered, Math.min(Math.max(0, retryAfter), MAX_RETRY_AFTER_S));
  }
}

/** Seconds to wait from a Retry-After header (delta-seconds or HTTP-date); null if absent or bad. */
export function parseRetryAfter(value: string | null | undefined, now: Date = new Date()): number | null {
  const text = value?.trim();
  if (!text) return null;
  if (/^[0-9]+$/.test(text)) return Number(text);
  if (!/^[A-Za-z]{3}, \d{2} [A-Za-z]{3} \d{4} \d{2}:\d{2}:\d{2} GMT$/.test(text)) return null;
  const when = Date.parse(text);
  if (Number.isNaN(when)) return null;
  return Math.max(0, (when - now.getTime()) / 1000);
}
