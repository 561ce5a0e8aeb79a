import { createHash } from 'node:crypto';

/** JSON with object keys sorted, so that two equal requests give the same text whatever their key order. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/**
 * Fingerprint of a request body for idempotency: the same body (in any key order) gives the same
 * fingerprint; any other body a different one. Fields named in `without` are left out.
 */
export function requestFingerprint(body: Record<string, unknown>, without: readonly string[] = []): string {
  const kept = Object.fromEntries(Object.entries(body).filter(([k]) => !without.includes(k)));
  return createHash('sha256').update(canonical(kept)).digest('hex');
}
