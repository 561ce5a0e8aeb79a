/**
 * Per-client token buckets: each client may spend `burst` requests at once and gets `ratePerS` back
 * every second. In memory, per gateway process (one gateway per port; several behind a balancer each
 * count their own share).
 */
export interface RateLimitOptions {
  /** Sustained requests per second per client. */
  ratePerS: number;
  /** Requests a client may make at once (bucket size). */
  burst: number;
  /** Clients tracked at most; beyond, full (idle) buckets are forgotten first (default 100 000). */
  maxClients?: number;
}

export type RateDecision =
  { readonly allowed: true } | { readonly allowed: false; readonly retryAfterS: number };

interface Bucket {
  tokens: number;
  at: number;
}

export class RateLimiter {
  readonly #buckets = new Map<string, Bucket>();
  readonly #maxClients: number;

  constructor(
    private readonly options: RateLimitOptions,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.#maxClients = options.maxClients ?? 100_000;
  }

  /** Takes one request from `client`'s bucket, or says how many whole seconds until one is there. */
  take(client: string): RateDecision {
    const now = this.now();
    const { ratePerS, burst } = this.options;
    let bucket = this.#buckets.get(client);
    if (bucket) {
      bucket.tokens = Math.min(burst, bucket.tokens + ((now - bucket.at) / 1000) * ratePerS);
      bucket.at = now;
    } else {
      if (this.#buckets.size >= this.#maxClients) this.#forgetIdle(now);
      bucket = { tokens: burst, at: now };
      this.#buckets.set(client, bucket);
    }
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return { allowed: true };
    }
    return { allowed: false, retryAfterS: Math.max(1, Math.ceil((1 - bucket.tokens) / ratePerS)) };
  }

  /** Clients tracked now. */
  get size(): number {
    return this.#buckets.size;
  }

  /** Drops buckets that have refilled (their clients are as new); if none, the oldest entries. */
  #forgetIdle(now: number): void {
    const { ratePerS, burst } = this.options;
    for (const [client, bucket] of this.#buckets)
      if (bucket.tokens + ((now - bucket.at) / 1000) * ratePerS >= burst) this.#buckets.delete(client);
    // Map keeps insertion order: the first keys are the oldest clients.
    for (const client of this.#buckets.keys()) {
      if (this.#buckets.size < this.#maxClients) break;
      this.#buckets.delete(client);
    }
  }
}
