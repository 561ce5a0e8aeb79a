/**
 * Fault injection of the fake PSP. Set at start-up and switched at run time through `PUT /admin/faults`.
 */
export interface FaultConfig {
  /** Added to every API request before it is processed (default 0). */
  latencyMs: number;
  /** Up to this much more, uniformly random (default 0). */
  latencyJitterMs: number;
  /** Probability 0..1 that a request fails with 500 before anything is recorded (default 0). */
  errorRate: number;
  /** The next N API requests fail with 503 before anything is recorded: a 5xx burst (default 0). */
  failNextRequests: number;
  /**
   * Probability 0..1 that a request is processed and recorded, but answered with 500: the nasty case where
   * the client cannot know the outcome and must retry with the same idempotency key (default 0).
   */
  errorAfterCommitRate: number;
  /** How long a `tok_timeout` request is held before the connection is dropped (default 60 000 ms). */
  hangMs: number;
}

export const defaultFaults: FaultConfig = {
  latencyMs: 0,
  latencyJitterMs: 0,
  errorRate: 0,
  failNextRequests: 0,
  errorAfterCommitRate: 0,
  hangMs: 60_000,
};

const RULES: Record<keyof FaultConfig, { min: number; max: number; integer: boolean }> = {
  latencyMs: { min: 0, max: 600_000, integer: true },
  latencyJitterMs: { min: 0, max: 600_000, integer: true },
  errorRate: { min: 0, max: 1, integer: false },
  failNextRequests: { min: 0, max: 1_000_000, integer: true },
  errorAfterCommitRate: { min: 0, max: 1, integer: false },
  hangMs: { min: 0, max: 3_600_000, integer: true },
};

/** Validates a partial fault config, reporting every problem at once. */
export function parseFaults(
  input: unknown,
): { ok: true; value: Partial<FaultConfig> } | { ok: false; issues: string[] } {
  if (typeof input !== 'object' || input === null || Array.isArray(input))
    return { ok: false, issues: ['body must be an object'] };
  const issues: string[] = [];
  const value: Partial<FaultConfig> = {};
  for (const [key, raw] of Object.entries(input)) {
    const rule = RULES[key as keyof FaultConfig] as (typeof RULES)[keyof FaultConfig] | undefined;
    if (!rule) {
      issues.push(`unknown setting ${key}`);
      continue;
    }
    if (
      typeof raw !== 'number' ||
      !Number.isFinite(raw) ||
      raw < rule.min ||
      raw > rule.max ||
      (rule.integer && !Number.isInteger(raw))
    ) {
      issues.push(`${key} must be ${rule.integer ? 'an integer' : 'a number'} in ${rule.min}..${rule.max}`);
      continue;
    }
    value[key as keyof FaultConfig] = raw;
  }
  return issues.length > 0 ? { ok: false, issues } : { ok: true, value };
}

export interface FaultDecision {
  delayMs: number;
  /** `before`: answer 5xx without processing; `after`: process, record, then answer 500. */
  fail: 'none' | 'burst' | 'before' | 'after';
}

/** Given the config and random draws in [0,1), when a request arrives, then what happens to it. */
export function decideFault(config: FaultConfig, draw: () => number): FaultDecision {
  const delayMs = config.latencyMs + Math.floor(draw() * config.latencyJitterMs);
  if (config.failNextRequests > 0) return { delayMs, fail: 'burst' };
  if (draw() < config.errorRate) return { delayMs, fail: 'before' };
  if (draw() < config.errorAfterCommitRate) return { delayMs, fail: 'after' };
  return { delayMs, fail: 'none' };
}
