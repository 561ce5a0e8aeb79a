import { createHash } from 'node:crypto';
import type { PspResponse } from './ledger.ts';

/** A response remembered under an idempotency key, with the fingerprint of the request that made it. */
export interface StoredResponse {
  readonly key: string;
  readonly fingerprint: string;
  readonly response: PspResponse;
}

/** Canonical JSON (sorted keys), so that key order does not change a fingerprint. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** Identifies a request: endpoint and body. */
export function fingerprint(endpoint: string, body: unknown): string {
  return createHash('sha256')
    .update(`${endpoint}\n${canonical(body)}`)
    .digest('hex');
}

/**
 * Given what is stored under a key, when a request with `print` arrives, then: `new` (process it),
 * `replay` (answer the stored response) or `conflict` (same key, different request: 409).
 */
export function classify(
  stored: StoredResponse | undefined,
  print: string,
): { kind: 'new' } | { kind: 'replay'; response: PspResponse } | { kind: 'conflict' } {
  if (!stored) return { kind: 'new' };
  return stored.fingerprint === print ? { kind: 'replay', response: stored.response } : { kind: 'conflict' };
}
