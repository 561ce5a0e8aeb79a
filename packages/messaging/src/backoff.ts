import type { RetryPolicy } from './types.ts';

export const defaultRetryPolicy: RetryPolicy = {
  initialDelayMs: 250,
  maxDelayMs: 30_000,
  multiplier: 2,
  jitter: 0.2,
  transientRetryMs: 300_000,
};

/** Delay before attempt `deliveryCount + 1`: exponential growth, capped, with ± jitter. */
export function retryDelay(
  policy: Pick<RetryPolicy, 'initialDelayMs' | 'maxDelayMs' | 'multiplier' | 'jitter'>,
  deliveryCount: number,
): number {
  const base = Math.min(
    policy.maxDelayMs,
    policy.initialDelayMs * policy.multiplier ** Math.max(0, deliveryCount - 1),
  );
  const spread = base * policy.jitter;
  return Math.max(1, Math.round(base - spread + Math.random() * 2 * spread));
}
