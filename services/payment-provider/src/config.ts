import { defaultFaults, parseFaults, type FaultConfig } from './domain/faults.ts';

/** Settings of the fake PSP process. */
export interface PaymentProviderConfig {
  /** HTTP port; 0 picks a free one (default 4010). */
  port: number;
  /** Default 127.0.0.1. */
  host: string;
  /** Directory of `ledger.jsonl` (default `data/payment-provider`). */
  dataDir: string;
  faults: FaultConfig;
  logLevel: string;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
  readonly code = 'INVALID_CONFIG';
  constructor(readonly issues: readonly string[]) {
    super(`invalid configuration: ${issues.join('; ')}`);
  }
}

const FAULT_ENV: Record<string, keyof FaultConfig> = {
  PSP_LATENCY_MS: 'latencyMs',
  PSP_LATENCY_JITTER_MS: 'latencyJitterMs',
  PSP_ERROR_RATE: 'errorRate',
  PSP_FAIL_NEXT_REQUESTS: 'failNextRequests',
  PSP_ERROR_AFTER_COMMIT_RATE: 'errorAfterCommitRate',
  PSP_HANG_MS: 'hangMs',
};

/** Builds the config from environment variables, reporting every problem at once. */
export function configFromEnv(env: Record<string, string | undefined>): PaymentProviderConfig {
  const issues: string[] = [];
  const port = Number(env.PORT ?? 4010);
  if (!Number.isInteger(port) || port < 0 || port > 65_535)
    issues.push(`PORT must be 0..65535, got ${env.PORT}`);
  const rawFaults: Record<string, number> = {};
  for (const [name, key] of Object.entries(FAULT_ENV)) {
    const value = env[name];
    if (value !== undefined && value !== '') rawFaults[key] = Number(value);
  }
  const faults = parseFaults(rawFaults);
  if (!faults.ok) issues.push(...faults.issues.map((i) => `PSP_* ${i}`));
  if (issues.length > 0) throw new ConfigError(issues);
  return {
    port,
    host: env.HOST ?? '127.0.0.1',
    dataDir: env.DATA_DIR ?? 'data/payment-provider',
    faults: { ...defaultFaults, ...(faults.ok ? faults.value : {}) },
    logLevel: env.LOG_LEVEL ?? 'info',
  };
}
